// The link seal on plain bytes: sequence numbers, and keys that need both sides' nonces.
// The attacks over real libp2p nodes and a recording forwarder are in link-replay.test.ts.
import { randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { deriveLinkKeys, FrameIntegrityError, FrameOpener, FrameReplayError, FrameSealer } from '../../ram-replication/index.ts'

async function identity (): Promise<{ secret: Uint8Array, id: string }> {
  const key = await generateKeyPair('Ed25519')
  return { secret: key.raw.subarray(0, 32), id: peerIdFromPrivateKey(key).toString() }
}

function join (chunks: readonly Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(chunks))
}

describe('link seal', () => {
  it('derives the same keys on both ends from both nonces, and other keys for another backup nonce', async () => {
    const primary = await identity()
    const backup = await identity()
    const primaryNonce = new Uint8Array(randomBytes(16))
    const backupNonce = new Uint8Array(randomBytes(16))
    const atPrimary = deriveLinkKeys(primary.secret, backup.id, primary.id, backup.id, primaryNonce, backupNonce)
    const atBackup = deriveLinkKeys(backup.secret, primary.id, primary.id, backup.id, primaryNonce, backupNonce)
    expect(Buffer.from(atPrimary.toBackup).equals(atBackup.toBackup)).toBe(true)
    expect(Buffer.from(atPrimary.toPrimary).equals(atBackup.toPrimary)).toBe(true)
    const replayed = deriveLinkKeys(backup.secret, primary.id, primary.id, backup.id, primaryNonce, new Uint8Array(randomBytes(16)))
    expect(Buffer.from(replayed.toBackup).equals(atBackup.toBackup)).toBe(false)
    expect(() => deriveLinkKeys(backup.secret, primary.id, primary.id, backup.id, primaryNonce, new Uint8Array(0))).toThrow(FrameIntegrityError)
  })

  it('opens frames once and in order: a replayed, duplicated or reordered frame is refused by name', async () => {
    const key = new Uint8Array(randomBytes(32))
    const sealer = new FrameSealer(key)
    const frames = [0, 1, 2, 3].map(i => join(sealer.seal([Uint8Array.of(i), new Uint8Array(100).fill(i)])))
    const opener = new FrameOpener(key)
    expect([...opener.open(frames[0])]).toEqual([0, ...new Array(100).fill(0)])
    expect(opener.open(frames[1])[0]).toBe(1)
    expect(() => opener.open(frames[1])).toThrow(/replayed or duplicated/)
    expect(() => opener.open(frames[0])).toThrow(FrameReplayError)
    expect(() => opener.open(frames[3])).toThrow(/reordered or dropped/)
    // A refused frame does not advance the opener: the next genuine frame still opens.
    expect(opener.open(frames[2])[0]).toBe(2)
    // A forged sequence number fails authentication (the AEAD nonce binds it), as does a
    // flipped bit of ciphertext or tag; nothing of such a frame is returned.
    const forged = frames[0].slice()
    forged.set(frames[3].subarray(0, 8), 0)
    expect(() => opener.open(forged)).toThrow(FrameIntegrityError)
    for (const at of [20, frames[0].length - 1]) {
      const altered = frames[0].slice()
      altered[at] ^= 1
      expect(() => new FrameOpener(key).open(altered)).toThrow(/fails authentication/)
    }
    expect(() => opener.open(new Uint8Array(10))).toThrow(FrameIntegrityError)
  })
})
