// Confirming a node listed in a seed file: dial it at a listed address and accept it only if
// the peer that completes the membership handshake there is the listed identity.
import { multiaddr } from '@multiformats/multiaddr'
import type { ConfirmNode } from '../../spores/index.ts'
import type { MyceliumHost } from '../host/index.ts'

export function seedConfirmation (host: () => MyceliumHost, onConfirmed: (peerId: string) => Promise<void>): ConfirmNode {
  return async (peerId, addrs, signal) => {
    if (peerId === host().peerId.toString()) return true
    for (const addr of addrs) {
      const target = addr.includes('/p2p/') ? addr : `${addr}/p2p/${peerId}`
      try {
        const conn = await host().dial(multiaddr(target), { signal })
        if (conn.remotePeer.toString() !== peerId) continue
        await onConfirmed(peerId)
        return true
      } catch {
        if (signal.aborted) return false
      }
    }
    return false
  }
}
