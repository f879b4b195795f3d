export class WaitTimeoutError extends Error {
  readonly name = 'WaitTimeoutError'
}

/** Polls `check` until it returns a truthy value or the time runs out. */
export async function waitFor<T> (check: () => Promise<T> | T, options: { timeoutMs?: number, intervalMs?: number, what?: string } = {}): Promise<NonNullable<T>> {
  const deadline = Date.now() + (options.timeoutMs ?? 20_000)
  let lastError: unknown
  while (true) {
    try {
      const value = await check()
      if (value !== undefined && value !== null && value !== false) return value as NonNullable<T>
    } catch (err) {
      lastError = err
    }
    if (Date.now() > deadline) throw new WaitTimeoutError(`timed out waiting for ${options.what ?? 'condition'}${lastError !== undefined ? ` (last error: ${(lastError as Error).message})` : ''}`)
    await new Promise(resolve => setTimeout(resolve, options.intervalMs ?? 200))
  }
}

export const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }
