// Asking to join without an invite link: the page posts its peer id to the administrator
// node that served it, shows the code the operator approves (`mycelium network approve`), and
// waits for the invite issued for its key alone.
const POLL_MS = 2_000

export class JoinRequestRefusedError extends Error {
  readonly name = 'JoinRequestRefusedError'
}

export async function requestToJoin (peerId: string, onCode: (code: string) => void, signal: AbortSignal): Promise<string> {
  const asked = await fetch('join-requests', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ peerId }), signal })
  const answer = await asked.json() as { code?: string, error?: string }
  if (!asked.ok || typeof answer.code !== 'string') throw new JoinRequestRefusedError(answer.error ?? `the node answered ${asked.status}`)
  onCode(answer.code)
  while (true) {
    await new Promise(resolve => setTimeout(resolve, POLL_MS))
    signal.throwIfAborted()
    const polled = await fetch(`join-requests/${encodeURIComponent(peerId)}`, { signal })
    const state = await polled.json() as { status?: string, invite?: string }
    if (state.status === 'approved' && typeof state.invite === 'string') return state.invite
    if (polled.status === 404) throw new JoinRequestRefusedError('the request expired before the operator approved it: ask again')
  }
}
