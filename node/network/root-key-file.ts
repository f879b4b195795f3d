// Moving network administration to another machine: the root secret key exported to a file
// encrypted with a passphrase (scrypt, then AES-256-GCM; the network id is authenticated
// data, so a file cannot be passed off as another network's). A wrong passphrase fails the
// GCM tag check and nothing is written.
import { scryptSync, randomBytes, createCipheriv, createDecipheriv } from 'node:crypto'
import { readFileSync, existsSync } from 'node:fs'
import { fromBase64Url, toBase64Url, getPublicKey } from '../../crypto/index.ts'
import { networkIdOf } from '../../membership/index.ts'
import { createFileExclusive } from '../home/index.ts'

export class RootKeyFileError extends Error {
  readonly name: string = 'RootKeyFileError'
}

export class WrongPassphraseError extends RootKeyFileError {
  readonly name = 'WrongPassphraseError'
}

const FORMAT = 'mycelium-root-key-v1'
// N = 2^15 (~32 MiB, well under a second on a Raspberry Pi 4)
const SCRYPT = { N: 32768, r: 8, p: 1 }

export interface RootKeyFileContents {
  networkId: string
  networkName: string
  rootSecretKey: Uint8Array
}

function derive (passphrase: string, salt: Uint8Array, params: { N: number, r: number, p: number }): Buffer {
  return scryptSync(passphrase.normalize('NFC'), salt, 32, { ...params, maxmem: 256 * params.N * params.r })
}

export function writeRootKeyFile (path: string, contents: RootKeyFileContents, passphrase: string): void {
  if (passphrase.length < 8) throw new RootKeyFileError('the passphrase must have at least 8 characters')
  if (existsSync(path)) throw new RootKeyFileError(`${path} already exists; refusing to overwrite it`)
  const salt = randomBytes(16)
  const iv = randomBytes(12)
  const cipher = createCipheriv('aes-256-gcm', derive(passphrase, salt, SCRYPT), iv)
  cipher.setAAD(Buffer.from(`${FORMAT}:${contents.networkId}`))
  const ciphertext = Buffer.concat([cipher.update(contents.rootSecretKey), cipher.final()])
  const file = {
    format: FORMAT,
    networkId: contents.networkId,
    networkName: contents.networkName,
    kdf: { name: 'scrypt', ...SCRYPT, salt: toBase64Url(salt) },
    cipher: { name: 'aes-256-gcm', iv: toBase64Url(iv), tag: toBase64Url(cipher.getAuthTag()) },
    ciphertext: toBase64Url(ciphertext)
  }
  createFileExclusive(path, JSON.stringify(file, null, 2) + '\n', 0o600)
}

export function readRootKeyFile (path: string, passphrase: string): RootKeyFileContents {
  let raw: any
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'))
  } catch (err) {
    throw new RootKeyFileError(`cannot read ${path}: ${(err as Error).message}`)
  }
  if (raw?.format !== FORMAT || typeof raw.networkId !== 'string' || typeof raw.networkName !== 'string' || raw.kdf?.name !== 'scrypt' || raw.cipher?.name !== 'aes-256-gcm' || typeof raw.ciphertext !== 'string') {
    throw new RootKeyFileError(`${path} is not an exported mycelium root key`)
  }
  const { N, r, p } = raw.kdf
  if (![N, r, p].every(Number.isSafeInteger) || N > 1 << 20 || r > 32 || p > 16) throw new RootKeyFileError(`${path} has unusable key derivation parameters`)
  let secret: Buffer
  try {
    const decipher = createDecipheriv('aes-256-gcm', derive(passphrase, fromBase64Url(raw.kdf.salt), { N, r, p }), fromBase64Url(raw.cipher.iv))
    decipher.setAAD(Buffer.from(`${FORMAT}:${raw.networkId as string}`))
    decipher.setAuthTag(fromBase64Url(raw.cipher.tag))
    secret = Buffer.concat([decipher.update(fromBase64Url(raw.ciphertext)), decipher.final()])
  } catch {
    throw new WrongPassphraseError(`wrong passphrase for ${path} (or the file was altered); nothing was imported`)
  }
  const rootSecretKey = new Uint8Array(secret)
  if (rootSecretKey.length !== 32 || networkIdOf(getPublicKey(rootSecretKey)) !== raw.networkId) throw new RootKeyFileError(`${path} does not hold the root key of network ${raw.networkId as string}`)
  return { networkId: raw.networkId, networkName: raw.networkName, rootSecretKey }
}

