// The key gossipsub uses to drop a message it has already seen, before it checks the message.
//
// Without one, gossipsub checks the signature of every copy it receives and only then finds
// it a duplicate: each message comes from every mesh peer that has it, so an idle sclerotium
// with a dozen links verified every gossip message about as many times (Ed25519 verify and a
// public key built per copy were a tenth of its idle CPU). Under the StrictSign policy a
// message's id is its origin and sequence number, so that pair names the message; a copy with
// the same pair and other content is a forgery of a message already delivered, and dropping
// it unchecked loses nothing. gossipsub records the key only after a copy passed its checks,
// so a forged copy that comes first cannot shadow the real message.
import type { RPC } from '@libp2p/gossipsub/message'

export function gossipFastMessageId (message: RPC.Message): string {
  const from = message.from === undefined ? '' : Buffer.from(message.from.buffer, message.from.byteOffset, message.from.byteLength).toString('base64')
  const seqno = message.seqno === undefined ? '' : Buffer.from(message.seqno.buffer, message.seqno.byteOffset, message.seqno.byteLength).toString('base64')
  return `${from}:${seqno}`
}
