// Shared set-up of the spores tests: identities, temporary databases and entry builders.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomSecretKey, getPublicKey } from '../../crypto/index.ts'
import { Spores, signEntry, signerOf, type Signer, type SporesOptions, type SignedEntry, type EntryType, type EntryValue } from '../../spores/index.ts'

export const NETWORK = 'testnet-spores'

export function identity (): Signer {
  return signerOf(randomSecretKey())
}

export interface Root {
  secretKey: Uint8Array
  publicKey: Uint8Array
  signer: Signer
}

export function networkRoot (): Root {
  const secretKey = randomSecretKey()
  return { secretKey, publicKey: getPublicKey(secretKey), signer: signerOf(secretKey) }
}

export async function tempDir (prefix = 'spores-'): Promise<{ path: string, remove: () => Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), prefix))
  return { path, remove: async () => await rm(path, { recursive: true, force: true }) }
}

export async function openTestSpores (dir: string, root: Root, signer: Signer = identity(), extra: Partial<SporesOptions> = {}): Promise<Spores> {
  return await Spores.open({ database: join(dir, 'db'), network: NETWORK, rootPublicKey: root.publicKey, signer, ...extra })
}

export function nodeValue (n = 0): EntryValue<'node'> {
  return { addrs: [`/ip4/127.0.0.1/tcp/${4000 + (n % 60000)}`], role: 'rhizomorph', hardware: { cores: 4, memoryMiB: 8192, arch: 'x64' } }
}

export function healthValue (): EntryValue<'health'> {
  return { status: 'ok', load: 0.5, memFreeMiB: 1024 }
}

export function entry<T extends EntryType> (signer: Signer, type: T, value: EntryValue<T>, options: { key?: string, seq?: number, issuedAt?: number, expiresAt?: number } = {}): SignedEntry<T> {
  const fields: { type: T, key: string, value: EntryValue<T>, seq: number, issuedAt: number, expiresAt?: number } = { type, key: options.key ?? signer.peerId, value, seq: options.seq ?? 1, issuedAt: options.issuedAt ?? Date.now() }
  if (options.expiresAt !== undefined) fields.expiresAt = options.expiresAt
  return signEntry(signer, fields)
}
