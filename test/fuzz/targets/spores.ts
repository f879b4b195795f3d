// Spores: canonical CBOR itself, signed entries (and their bodies, re-wrapped so mutations pass
// the envelope), seed files (bodies re-signed by the exporter), primary epochs (headers
// re-framed) and the root-signed certificate of the first epoch.
import { decodeCanonical, encodeCanonical, sign, sha256 } from '../../../crypto/index.ts'
import { signEntry, signerOf, decodeEntry, type SignedEntry } from '../../../spores/index.ts'
import { decodeSeedFile, encodeSeedFile, type SeedBody } from '../../../spores/seed/seed-file.ts'
import { buildHeader, encodeEpoch, decodeEpoch, type Epoch } from '../../../spores/primary/epoch.ts'
import { certifyEpoch, committeeCertificateVerifier } from '../../../spores/primary/certificate.ts'
import type { FuzzTarget } from '../engine/target.ts'
import { keyOf, NOW } from './fixtures.ts'

const alice = signerOf(keyOf('alice').secretKey)
const bob = signerOf(keyOf('bob').secretKey)
const root = signerOf(keyOf('root').secretKey)

/** One entry of every type, with optional fields present and absent. */
export function sampleEntries (): SignedEntry[] {
  const at = { seq: 3, issuedAt: NOW }
  return [
    signEntry(alice, { type: 'node', key: alice.peerId, value: { addrs: ['/ip4/10.0.0.1/tcp/7700', '/ip6/::1/tcp/7700/ws'], role: 'sclerotium', hardware: { cores: 4, arch: 'arm64', kvm: false, load: 0.25 } }, ...at }),
    signEntry(alice, { type: 'health', key: alice.peerId, value: { status: 'degraded', load: 1.5, memFreeMiB: 812, diskFreeGiB: 20 }, ...at, expiresAt: NOW + 60_000 }),
    signEntry(bob, { type: 'trust', key: alice.peerId, value: { score: 0.75, reason: 'uptime', certificate: new Uint8Array(40).fill(7) }, ...at }),
    signEntry(bob, { type: 'usage', key: bob.peerId, value: { cpu: 0.5, memoryMiB: 1024, rxBytes: 123456789, txBytes: 42, periodS: 60 }, ...at }),
    signEntry(bob, { type: 'connection', key: `${bob.peerId}/${alice.peerId}`, value: { remote: alice.peerId, state: 'connected', since: NOW - 1000, events: [{ at: NOW - 2000, kind: 'c' }, { at: NOW - 1500, kind: 'd' }] }, ...at }),
    signEntry(bob, { type: 'uptime', key: bob.peerId, value: { since: NOW - 86_400_000, uptimeS: 86_400, epochs: 12 }, ...at }),
    signEntry(alice, { type: 'service', key: `${alice.peerId}/web`, value: { name: 'web', endpoints: ['/dns4/example.org/tcp/443/wss', 'https://example.org/'], protocol: 'http/1.1' }, ...at }),
    signEntry(alice, { type: 'role', key: alice.peerId, value: { role: 'hypha', reason: 'battery' }, ...at })
  ]
}

const entries = sampleEntries()

/** The canonical [body, sig] envelope around a (mutated) body: decodeEntry checks no signature. */
function envelope (body: Uint8Array): Uint8Array {
  return encodeCanonical([body, new Uint8Array(64).fill(1)])
}

export const canonicalCborTarget: FuzzTarget = {
  name: 'canonical-cbor',
  what: 'crypto/canonical-cbor.ts decodeCanonical',
  layers: [{ name: 'value', structure: 'cbor', seeds: [...entries.map(e => e.body), encodeCanonical({ a: [1, -2, 1.5, 'x', new Uint8Array(3), null, true, [[{}]]], b: 2n ** 60n })] }],
  decode: decodeCanonical,
  reencode: encodeCanonical,
  canonical: true
}

export const sporeEntryTarget: FuzzTarget = {
  name: 'spore-entry',
  what: 'spores/entry decodeEntry (envelope, body decoder, schemas of every type)',
  layers: [
    { name: 'entry', structure: 'binary', seeds: entries.map(e => e.bytes) },
    { name: 'body', structure: 'cbor', seeds: entries.map(e => e.body), wrap: envelope }
  ],
  decode: decodeEntry,
  // the one body decoder accepts only the canonical encoding of the fields it returns
  reencode: (e) => {
    const { type, key, value, origin, seq, issuedAt, expiresAt, sig } = e as SignedEntry
    const fields: Record<string, unknown> = { type, key, value, origin, seq, issuedAt }
    if (expiresAt !== undefined) fields.expiresAt = expiresAt
    return encodeCanonical([encodeCanonical(fields), sig])
  },
  canonical: true
}

const seedBody: Omit<SeedBody, 'format' | 'exporter'> = {
  network: 'mycabcdefghijklmnopqrst',
  exportedAt: NOW,
  membership: new Uint8Array(90).fill(3),
  primary: { epoch: 4, digest: sha256(new Uint8Array([4])) },
  nodes: [{ peerId: alice.peerId, addrs: ['/ip4/10.0.0.1/tcp/7700'] }, { peerId: bob.peerId, addrs: [] }],
  entries: entries.slice(0, 3).map(e => e.bytes)
}

/** Frames a (mutated) body the way the exporter does, signed, so the body's schema is reached. */
function seedFileOf (body: Uint8Array): Uint8Array {
  const payload = encodeCanonical([alice.peerId, body, sign(alice.secretKey, body)])
  const out = new Uint8Array(12 + payload.length)
  out.set(new TextEncoder().encode('MYCSEED1'))
  new DataView(out.buffer).setUint32(8, payload.length)
  out.set(payload, 12)
  return out
}

export const seedFileTarget: FuzzTarget = {
  name: 'seed-file',
  what: 'spores/seed decodeSeedFile (frame, signature, body schema)',
  layers: [
    { name: 'file', structure: 'binary', seeds: [encodeSeedFile(alice, seedBody), encodeSeedFile(alice, { ...seedBody, primary: null, nodes: [], entries: [] })] },
    { name: 'body', structure: 'cbor', seeds: [encodeCanonical({ format: 1, exporter: alice.peerId, ...seedBody })], wrap: seedFileOf }
  ],
  decode: decodeSeedFile,
  reencode: (body) => {
    const { format: _f, exporter: _e, ...rest } = body as SeedBody
    return encodeSeedFile(alice, rest)
  },
  canonical: true
}

function epochOf (options: { epoch: number, prev: Uint8Array | null, entries: SignedEntry[] }): { bytes: Uint8Array, headerBytes: Uint8Array, certificate: Uint8Array, sorted: SignedEntry[] } {
  const built = buildHeader({ network: 'mycabcdefghijklmnopqrst', epoch: options.epoch, prev: options.prev, entries: options.entries, committee: [alice.peerId, bob.peerId], issuedAt: NOW })
  const certificate = certifyEpoch(built.digest, [root])
  return { bytes: encodeEpoch(built.headerBytes, certificate, built.entries), headerBytes: built.headerBytes, certificate, sorted: built.entries }
}

const genesis = epochOf({ epoch: 0, prev: null, entries })
const second = epochOf({ epoch: 1, prev: sha256(genesis.headerBytes), entries: entries.slice(2, 5) })

export const primaryEpochTarget: FuzzTarget = {
  name: 'primary-epoch',
  what: 'spores/primary decodeEpoch (header, entries, digest)',
  layers: [
    { name: 'epoch', structure: 'cbor', seeds: [genesis.bytes, second.bytes] },
    // header fields mutated, framed with the genesis certificate and entries again
    { name: 'header', structure: 'cbor', seeds: [genesis.headerBytes], wrap: (header) => encodeEpoch(header, genesis.certificate, genesis.sorted) }
  ],
  decode: decodeEpoch,
  reencode: (e) => { const epoch = e as Epoch; return encodeEpoch(epoch.headerBytes, epoch.certificate, epoch.entries) },
  canonical: true
}

const verifier = committeeCertificateVerifier({ rootPublicKey: keyOf('root').publicKey })
const genesisHeader = decodeEpoch(genesis.bytes)

export const epochCertificateTarget: FuzzTarget = {
  name: 'epoch-root-certificate',
  what: 'spores/primary committeeCertificateVerifier (root-signed certificate of epoch 0)',
  layers: [{ name: 'certificate', structure: 'cbor', seeds: [genesis.certificate, certifyEpoch(genesisHeader.digest, [root, alice, bob])] }],
  decode: (certificate) => verifier.verify({ ...genesisHeader, certificate }, undefined),
  rejected: (ok) => ok !== true
}

export const sporeTargets = [canonicalCborTarget, sporeEntryTarget, seedFileTarget, primaryEpochTarget, epochCertificateTarget]
