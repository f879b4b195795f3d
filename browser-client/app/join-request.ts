// Asking to join without an invite link: the page posts its peer id to the administrator
// node that served it, shows the random code the node drew (the operator reads it off this
// screen and runs `mycelium network approve <code>`), and polls for the invite issued for its
// key alone, proving with each poll that it holds that key (a signature of the request id).
import { toBase64Url } from '../../crypto/index.ts'
import { collectProofMessage } from './join-proof.ts'

const POLL_MS = 2_000

export class JoinRequestRefusedError extends Error {
  readonly name = 'JoinRequestRefusedError'
}

async function json (response: Response): Promise<Record<string, unknown>> {
  try {
    const body = await response.json() as unknown
    return body !== null && typeof body === 'object' ? body as Record<string, unknown> : {}
  } catch {
    return {}
  }
}

const sleep = async (ms: number, signal: AbortSignal): Promise<void> => {
  await new Promise(resolve => setTimeout(resolve, ms))
  signal.throwIfAborted()
}

export async function requestToJoin (peerId: string, sign: (data: Uint8Array) => Promise<Uint8Array>, onCode: (code: string) => void, signal: AbortSignal): Promise<string> {
  const asked = await fetch('join-requests', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ peerId }), signal })
  const answer = await json(asked)
  if (asked.status !== 202 || typeof answer.code !== 'string' || typeof answer.requestId !== 'string') {
    throw new JoinRequestRefusedError(typeof answer.error === 'string' ? answer.error : `the node answered ${asked.status}`)
  }
  const requestId = answer.requestId
  onCode(answer.code)
  // the request id does not change: one signature serves every poll
  const signature = toBase64Url(await sign(collectProofMessage(requestId)))
  while (true) {
    await sleep(POLL_MS, signal)
    const polled = await fetch('join-requests/collect', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ requestId, signature }), signal })
    const state = await json(polled)
    if (polled.status === 200 && state.status === 'approved' && typeof state.invite === 'string') return state.invite
    if (polled.status === 200 && state.status === 'pending') continue
    if (polled.status === 429) {
      await sleep(Number(polled.headers.get('retry-after') ?? 5) * 1000, signal)
      continue
    }
    if (polled.status === 404) throw new JoinRequestRefusedError('the request expired before the operator approved it: ask again')
    throw new JoinRequestRefusedError(typeof state.error === 'string' ? state.error : `the node answered ${polled.status}`)
  }
}
