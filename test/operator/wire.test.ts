import { describe, it, expect, afterAll } from 'vitest'
import { mkdtempSync, rmSync, readFileSync, writeFileSync, existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomSecretKey, getPublicKey, peerIdOfPublicKey } from '../../crypto/index.ts'
import { networkIdOf } from '../../membership/index.ts'
import { Home } from '../../node/home/index.ts'
import { signRevocation, encodeRevocation, decodeRevocation, RevocationList } from '../../node/revocation/index.ts'
import { encodeBridgedMessage, decodeBridgedMessage } from '../../node/gossip/index.ts'
import { TokenBucket, parseRate } from '../../node/bridge/index.ts'
import { writeRootKeyFile, readRootKeyFile, WrongPassphraseError } from '../../node/network/index.ts'

const scratch = mkdtempSync(join(tmpdir(), 'myc-wire-'))
afterAll(() => { rmSync(scratch, { recursive: true, force: true }) })

function network (): { secret: Uint8Array, publicKey: Uint8Array, networkId: string } {
  const secret = randomSecretKey()
  const publicKey = getPublicKey(secret)
  return { secret, publicKey, networkId: networkIdOf(publicKey) }
}

const somePeer = (): string => peerIdOfPublicKey(getPublicKey(randomSecretKey()))

describe('revocations', () => {
  it('verify only with their own network\'s root key, and refuse tampering', () => {
    const net = network()
    const peer = somePeer()
    const bytes = encodeRevocation(signRevocation(net.secret, net.networkId, peer, 1_700_000_000_000))
    expect(decodeRevocation(bytes, net.networkId, net.publicKey).peerId).toBe(peer)
    const other = network()
    expect(() => decodeRevocation(bytes, other.networkId, other.publicKey)).toThrow(/another network/)
    const forged = encodeRevocation(signRevocation(other.secret, net.networkId, peer, 1))
    expect(() => decodeRevocation(forged, net.networkId, net.publicKey)).toThrow(/not signed by this network's root key/)
    const tampered = Uint8Array.from(bytes)
    tampered[tampered.length - 1] ^= 1
    expect(() => decodeRevocation(tampered, net.networkId, net.publicKey)).toThrow()
  })

  it('are kept in the home, skip invalid entries, and a tampered file fails loudly', () => {
    const net = network()
    const home = new Home(join(scratch, 'rev'))
    const info = { networkId: net.networkId, name: 'n', rootPublicKey: net.publicKey }
    const list = new RevocationList(home, info)
    const peer = somePeer()
    const other = network()
    const added = list.merge([encodeRevocation(signRevocation(net.secret, net.networkId, peer, 1)), encodeRevocation(signRevocation(other.secret, net.networkId, somePeer(), 1)), new Uint8Array([1, 2, 3])])
    expect(added.map(r => r.peerId)).toEqual([peer])
    expect(new RevocationList(home, info).has(peer)).toBe(true)
    const file = home.path('revocations.json')
    writeFileSync(file, readFileSync(file, 'utf8').replace(/"[A-Za-z0-9_-]{10}/, '"AAAAAAAAAA'))
    expect(() => new RevocationList(home, info)).toThrow(/corrupted/)
  })
})

describe('bridged messages', () => {
  it('carry their origin, verify with the bridge key, and refuse any change', () => {
    const bridgeSecret = randomSecretKey()
    const bridge = peerIdOfPublicKey(getPublicKey(bridgeSecret))
    const message = { topic: 'chat', originNetwork: network().networkId, originPeer: somePeer(), data: new TextEncoder().encode('hi'), bridge }
    const bytes = encodeBridgedMessage(message, bridgeSecret)
    expect(decodeBridgedMessage(bytes)).toEqual(message)
    const tampered = Uint8Array.from(bytes)
    tampered[tampered.length - 70] ^= 1
    expect(decodeBridgedMessage(tampered)).toBeUndefined()
    const impostor = encodeBridgedMessage(message, randomSecretKey())
    expect(decodeBridgedMessage(impostor)).toBeUndefined()
    expect(decodeBridgedMessage(new TextEncoder().encode('plain text'))).toBeUndefined()
  })
})

describe('the bridge rate limit', () => {
  it('lets a burst of one second through, then the rate', () => {
    let now = 0
    const bucket = new TokenBucket(10, () => now)
    let passed = 0
    for (let i = 0; i < 100; i++) if (bucket.take()) passed++
    expect(passed).toBe(10)
    now = 500
    passed = 0
    for (let i = 0; i < 100; i++) if (bucket.take()) passed++
    expect(passed).toBe(5)
    now = 60_000
    passed = 0
    for (let i = 0; i < 100; i++) if (bucket.take()) passed++
    expect(passed).toBe(10)
  })

  it('parses rates', () => {
    expect(parseRate('100/s')).toBe(100)
    expect(parseRate('30/m')).toBe(0.5)
    expect(() => parseRate('fast')).toThrow(/not a rate/)
    expect(() => parseRate('0/s')).toThrow(/out of range/)
  })
})

describe('the exported root key file', () => {
  it('round-trips with the passphrase; a wrong one or an altered file imports nothing', () => {
    const net = network()
    const file = join(scratch, 'root.key')
    writeRootKeyFile(file, { networkId: net.networkId, networkName: 'home', rootSecretKey: net.secret }, 'a long passphrase')
    expect(readRootKeyFile(file, 'a long passphrase').rootSecretKey).toEqual(net.secret)
    expect(() => readRootKeyFile(file, 'another passphrase')).toThrow(WrongPassphraseError)
    const altered = JSON.parse(readFileSync(file, 'utf8'))
    altered.networkId = network().networkId
    const alteredFile = join(scratch, 'altered.key')
    writeFileSync(alteredFile, JSON.stringify(altered))
    expect(() => readRootKeyFile(alteredFile, 'a long passphrase')).toThrow(WrongPassphraseError)
    expect(() => writeRootKeyFile(file, { networkId: net.networkId, networkName: 'home', rootSecretKey: net.secret }, 'a long passphrase')).toThrow(/already exists/)
    expect(() => writeRootKeyFile(join(scratch, 'short.key'), { networkId: net.networkId, networkName: 'home', rootSecretKey: net.secret }, 'short')).toThrow(/at least 8/)
    expect(existsSync(join(scratch, 'short.key'))).toBe(false)
  })
})
