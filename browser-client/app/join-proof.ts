// What a tab signs with its own Ed25519 key to collect the invite approved for it: the random
// request id the node issued when the tab asked. Knowing a tab's peer id (or even its request
// id) is then not enough to take its invite. The text prefix keeps this signature from being
// valid for anything else the key signs.
const PREFIX = 'mycelium browser join request: collect\n'

export function collectProofMessage (requestId: string): Uint8Array {
  return new TextEncoder().encode(PREFIX + requestId)
}
