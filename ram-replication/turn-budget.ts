// A daemon does everything on one event loop: lease requests and renewals (a voter that does
// not answer within LEASE_ASK_TIMEOUT_MS, 250 ms, counts as no answer), stripes, heartbeats, an
// interpreted guest. Work over a whole guest's memory (hashing it, copying it for a full
// checkpoint, encoding or applying a full epoch) takes tens of milliseconds on an idle core and
// hundreds on a busy 2-core machine; done in one go, it made a backup that was taking an
// initial sync look dead to the lease requests of its primary. Such work is written as a step
// function that does a small bounded piece per call, and runs for at most TURN_BUDGET_MS per
// turn of the event loop, letting timers and I/O run between turns.

export const TURN_BUDGET_MS = 8

/** Does one small piece of some work; true once all of it is done. */
export type WorkStep = () => boolean

/** A step over a generator that yields between its pieces of work. */
export function stepsOf (work: Generator<unknown, unknown>): WorkStep {
  return () => work.next().done === true
}

/** Runs `step` until the work is done (true) or this turn's budget is spent (false). */
export function runForTurn (step: WorkStep, budgetMs = TURN_BUDGET_MS): boolean {
  const startedAt = performance.now()
  for (;;) {
    if (step()) return true
    if (performance.now() - startedAt >= budgetMs) return false
  }
}

/** Runs `step` to the end, as much as fits in this turn now and the rest in later turns. */
export async function runInTurns (step: WorkStep, signal?: AbortSignal): Promise<void> {
  signal?.throwIfAborted()
  if (!runForTurn(step)) await runInLaterTurns(step, signal)
}

/** Runs `step` to the end, starting in the next turn. Rejects with the signal's reason once it aborts. */
export async function runInLaterTurns (step: WorkStep, signal?: AbortSignal): Promise<void> {
  do {
    await nextTurn()
    signal?.throwIfAborted()
  } while (!runForTurn(step))
}

/** Lets the event loop turn: timers and I/O that are due run before this resolves. */
async function nextTurn (): Promise<void> {
  await new Promise<void>(resolve => setImmediate(resolve))
}
