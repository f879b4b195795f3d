// The node's data directory. Every file's name, format and owner is listed here, so an
// operator can tell what is safe to back up (all of it) and what is secret (the keys).
//
//   node.key          libp2p protobuf of the node's Ed25519 key (0600); the peer id
//   network.json      { networkId, name, rootPublicKey } of the network this node is in
//   network-root.key  the network root secret key, only on nodes that administer it (0600)
//   membership.cert   this node's certificate chain, CBOR array of certificates
//   invites.json      outstanding invites this node issued (0600: holds their secrets)
//   members.json      certificates this node issued as administrator: [{ peerId, capabilities,
//                     issuedAt, expiresAt }], for `network members`
//   revocations.json  revocations of this network's members signed by its root key, as
//                     base64url CBOR; every node keeps them and refuses the peers they name
//   bridges.json      bridges to other networks: [{ id, networkId, networkName, topics, rate,
//                     createdAt }]; each has its own home (own node key, certificate) in
//                     bridges/<id>/
//   bootstrap.json    multiaddrs to dial at start (from the invite, then learned)
//   known-peers.json  members seen recently and their addresses, to rejoin after restart
//   api.token         bearer token of the admin API (0600)
//   daemon.json       { pid, apiPort, startedAt, apiSocket? } while a daemon runs
//   api.sock          the admin API as a unix socket (0600) while a daemon runs: the CLI
//                     reaches it even when the daemon runs in another network namespace
//   spores/           the node's LevelDB
import { mkdirSync, readFileSync, existsSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { homedir } from 'node:os'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import type { PrivateKey } from '@libp2p/interface'
import { encodeCanonical, decodeCanonical, fromBase64Url, toBase64Url, getPublicKey, equalBytes, randomBytesOf, toHex } from '../../crypto/index.ts'
import { decodeCertificate, encodeChain, networkIdOf, isNetworkId, type CertificateChain, type KnownMember } from '../../membership/index.ts'
import { createFileExclusive, readJson, writeFileAtomic, writeFileAtomicAsync, removeIfExists } from './files.ts'
import { HomeError } from './errors.ts'

export interface NetworkInfo {
  networkId: string
  name: string
  rootPublicKey: Uint8Array
}

export interface DaemonInfo {
  pid: number
  apiPort: number
  startedAt: number
  /** the admin API's unix socket in this home, when the daemon could open one */
  apiSocket?: string
}

export function randomApiToken (): string {
  return toHex(randomBytesOf(32))
}

export function defaultHomeDir (env: NodeJS.ProcessEnv = process.env): string {
  return env.MYCELIUM_HOME !== undefined && env.MYCELIUM_HOME !== '' ? env.MYCELIUM_HOME : join(homedir(), '.mycelium')
}

function isStringArray (v: unknown): v is string[] {
  return Array.isArray(v) && v.every(x => typeof x === 'string')
}

export class Home {
  readonly dir: string

  constructor (dir: string) {
    this.dir = dir
  }

  path (name: string): string {
    return join(this.dir, name)
  }

  ensure (): void {
    try {
      mkdirSync(this.dir, { recursive: true, mode: 0o700 })
    } catch (err) {
      throw new HomeError(`cannot create home directory ${this.dir}: ${(err as Error).message}`)
    }
    if (!statSync(this.dir).isDirectory()) throw new HomeError(`${this.dir} is not a directory`)
  }

  exists (): boolean {
    return existsSync(this.dir)
  }

  // --- node key -----------------------------------------------------------

  hasNodeKey (): boolean {
    return existsSync(this.path('node.key'))
  }

  async loadOrCreateNodeKey (): Promise<PrivateKey> {
    if (this.hasNodeKey()) return this.loadNodeKey()
    this.ensure()
    const key = await generateKeyPair('Ed25519')
    createFileExclusive(this.path('node.key'), privateKeyToProtobuf(key))
    return key
  }

  loadNodeKey (): PrivateKey {
    const file = this.path('node.key')
    let bytes: Uint8Array
    try {
      bytes = readFileSync(file)
    } catch (err) {
      throw new HomeError(`cannot read node key ${file}: ${(err as Error).message}`)
    }
    let key: PrivateKey
    try {
      key = privateKeyFromProtobuf(bytes)
    } catch {
      throw new HomeError(`node key ${file} is corrupted; restore it from a backup (moving it away gives this node a new identity)`)
    }
    if (key.type !== 'Ed25519') throw new HomeError(`node key ${file} is not an Ed25519 key`)
    return key
  }

  // --- network --------------------------------------------------------------

  loadNetwork (): NetworkInfo | undefined {
    return readJson(this.path('network.json'), (v) => {
      const o = v as Record<string, unknown>
      if (!isNetworkId(o?.networkId) || typeof o.name !== 'string' || typeof o.rootPublicKey !== 'string') throw new Error('missing fields')
      const rootPublicKey = fromBase64Url(o.rootPublicKey)
      if (networkIdOf(rootPublicKey) !== o.networkId) throw new Error('root key does not match network id')
      return { networkId: o.networkId, name: o.name, rootPublicKey }
    })
  }

  saveNetwork (info: NetworkInfo): void {
    this.ensure()
    writeFileAtomic(this.path('network.json'), JSON.stringify({ networkId: info.networkId, name: info.name, rootPublicKey: toBase64Url(info.rootPublicKey) }, null, 2) + '\n')
  }

  hasRootKey (): boolean {
    return existsSync(this.path('network-root.key'))
  }

  createRootKey (secretKey: Uint8Array): void {
    this.ensure()
    createFileExclusive(this.path('network-root.key'), JSON.stringify({ secretKey: toBase64Url(secretKey) }) + '\n')
  }

  /** The root secret, checked against the network's public key. */
  loadRootKey (network: NetworkInfo): Uint8Array | undefined {
    const value = readJson(this.path('network-root.key'), (v) => {
      const o = v as Record<string, unknown>
      if (typeof o?.secretKey !== 'string') throw new Error('missing secretKey')
      const secret = fromBase64Url(o.secretKey)
      if (secret.length !== 32) throw new Error('wrong key length')
      return secret
    })
    if (value === undefined) return undefined
    if (!equalBytes(getPublicKey(value), network.rootPublicKey)) throw new HomeError(`${this.path('network-root.key')} does not belong to network ${network.networkId}`)
    return value
  }

  // --- membership certificate -------------------------------------------------

  loadChain (): CertificateChain | undefined {
    const file = this.path('membership.cert')
    if (!existsSync(file)) return undefined
    try {
      const raw = decodeCanonical(readFileSync(file))
      if (!Array.isArray(raw)) throw new Error('not a chain')
      return raw.map(c => decodeCertificate(c as Uint8Array))
    } catch (err) {
      throw new HomeError(`${file} is corrupted (${(err as Error).message}); join the network again with a new invite`)
    }
  }

  saveChain (chain: CertificateChain): void {
    this.ensure()
    writeFileAtomic(this.path('membership.cert'), encodeCanonical(encodeChain(chain)))
  }

  // --- the primary epoch the invite vouched for --------------------------------

  /** The certified epoch the invite vouched for (the primary spore's chain may start there), if it carried one. */
  loadEpochAnchor (): { epoch: number, digest: Uint8Array } | undefined {
    return readJson(this.path('epoch-anchor.json'), (v) => {
      const o = v as Record<string, unknown>
      if (!Number.isSafeInteger(o?.epoch) || (o.epoch as number) < 0 || typeof o.digest !== 'string') throw new Error('missing fields')
      const digest = fromBase64Url(o.digest)
      if (digest.length !== 32) throw new Error('digest is not 32 bytes')
      return { epoch: o.epoch as number, digest }
    })
  }

  saveEpochAnchor (anchor: { epoch: number, digest: Uint8Array }): void {
    this.ensure()
    writeFileAtomic(this.path('epoch-anchor.json'), JSON.stringify({ epoch: anchor.epoch, digest: toBase64Url(anchor.digest) }, null, 2) + '\n')
  }

  // --- bootstrap and known peers ------------------------------------------------

  loadBootstrap (): string[] {
    return readJson(this.path('bootstrap.json'), (v) => { if (!isStringArray(v)) throw new Error('not a list of addresses'); return v }) ?? []
  }

  saveBootstrap (addrs: string[]): void {
    this.ensure()
    writeFileAtomic(this.path('bootstrap.json'), JSON.stringify([...new Set(addrs)], null, 2) + '\n')
  }

  /** Remembered members; the older form (peer id → addresses) reads as seen now. */
  loadKnownPeers (now = Date.now()): Record<string, KnownMember> {
    return readJson(this.path('known-peers.json'), (v) => {
      if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error('not an object')
      const out: Record<string, KnownMember> = {}
      for (const [peerId, m] of Object.entries(v as Record<string, unknown>)) {
        if (isStringArray(m)) { out[peerId] = { addrs: m, seenAt: now }; continue }
        const r = m as Record<string, unknown> | null
        if (r === null || typeof r !== 'object' || !isStringArray(r.addrs) || !Number.isSafeInteger(r.seenAt) || (r.expiresAt !== undefined && !Number.isSafeInteger(r.expiresAt))) throw new Error(`entry ${peerId.slice(0, 60)} is malformed`)
        out[peerId] = { addrs: r.addrs, seenAt: r.seenAt as number, ...(r.expiresAt === undefined ? {} : { expiresAt: r.expiresAt as number }) }
      }
      return out
    }) ?? {}
  }

  /** The running daemon saves off its event loop; `final` (at stop) writes before returning. */
  async saveKnownPeers (peers: Record<string, KnownMember>, final = false): Promise<void> {
    const text = JSON.stringify(peers, null, 2) + '\n'
    if (final) writeFileAtomic(this.path('known-peers.json'), text)
    else await writeFileAtomicAsync(this.path('known-peers.json'), text)
  }

  // --- admin API ------------------------------------------------------------------

  loadApiToken (): string | undefined {
    const file = this.path('api.token')
    if (!existsSync(file)) return undefined
    const token = readFileSync(file, 'utf8').trim()
    if (!/^[0-9a-f]{64}$/.test(token)) throw new HomeError(`${file} is corrupted; delete it and restart the daemon to get a new token`)
    return token
  }

  saveApiToken (token: string): void {
    createFileExclusive(this.path('api.token'), token + '\n')
  }

  /** Where the daemon's admin API also listens: a unix socket, reachable from any network namespace. */
  apiSocketPath (): string {
    return this.path('api.sock')
  }

  loadDaemonInfo (): DaemonInfo | undefined {
    return readJson(this.path('daemon.json'), (v) => {
      const o = v as Record<string, unknown>
      if (!Number.isInteger(o?.pid) || !Number.isInteger(o.apiPort) || !Number.isInteger(o.startedAt)) throw new Error('missing fields')
      if (o.apiSocket !== undefined && typeof o.apiSocket !== 'string') throw new Error('apiSocket is not a path')
      return o as unknown as DaemonInfo
    })
  }

  saveDaemonInfo (info: DaemonInfo): void {
    writeFileAtomic(this.path('daemon.json'), JSON.stringify(info) + '\n')
  }

  clearDaemonInfo (): void {
    removeIfExists(this.path('daemon.json'))
  }
}
