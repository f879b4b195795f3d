// The files of a node's home (node/home/home.ts lists them) as the node reads them: each input
// is one file's content, written into a scratch home and loaded by the real loader. A loader
// refuses a bad file with HomeError (whose cause must itself be a deliberate refusal, not a
// TypeError from reading a field of null), or sets the file aside (vote files); the daemon
// then says which file is corrupted instead of dying on a stack trace.
import { mkdtempSync, writeFileSync, rmSync, existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { encodeCanonical, toBase64Url } from '../../../crypto/index.ts'
import { Home, InviteBook, MemberBook, HomeError, type NetworkInfo } from '../../../node/home/index.ts'
import { RevocationList } from '../../../node/revocation/index.ts'
import { BridgeBook } from '../../../node/bridge/bridge-book.ts'
import { fileVoterStore } from '../../../node/vm/lease-votes-file.ts'
import { FileVoteStore } from '../../../node/consensus/vote-file.ts'
import { issueCertificate, encodeChain, networkIdOf, signRevocation, encodeRevocation } from '../../../membership/index.ts'
import { FuzzFailure, rejectionOf, type FuzzTarget, type Layer } from '../engine/target.ts'
import { keyOf, NOW, text } from './fixtures.ts'

const root = keyOf('home-root')
const network: NetworkInfo = { networkId: networkIdOf(root.publicKey), name: 'home', rootPublicKey: root.publicKey }
const member = keyOf('home-member')
const json = (v: unknown): Uint8Array => text(JSON.stringify(v, null, 2) + '\n')

interface HomeFile {
  name: string
  structure: 'json' | 'cbor' | 'text'
  seeds: Uint8Array[]
  load: (home: Home) => unknown
}

const FILES: HomeFile[] = [
  { name: 'network.json', structure: 'json', seeds: [json({ networkId: network.networkId, name: 'home', rootPublicKey: toBase64Url(root.publicKey) })], load: h => h.loadNetwork() },
  { name: 'network-root.key', structure: 'json', seeds: [json({ secretKey: toBase64Url(root.secretKey) })], load: h => h.loadRootKey(network) },
  {
    name: 'membership.cert',
    structure: 'cbor',
    seeds: [encodeCanonical(encodeChain([issueCertificate({ networkId: network.networkId, issuerSecretKey: root.secretKey, issuerPublicKey: root.publicKey, subject: member.publicKey, capabilities: ['member'], issuedAt: NOW, ttlMs: 3600_000 })]))],
    load: h => h.loadChain()
  },
  { name: 'bootstrap.json', structure: 'json', seeds: [json(['/ip4/10.0.0.1/tcp/7700/p2p/12D3KooWDa7Y4fJc1bFY7wBqJ1j1ZXAc9cPe962HTdYhBuWtvAxD', '/ip6/::1/tcp/7700'])], load: h => h.loadBootstrap() },
  { name: 'known-peers.json', structure: 'json', seeds: [json({ [member.peerId]: ['/ip4/10.0.0.2/tcp/7700'], [root.peerId]: [] })], load: h => h.loadKnownPeers() },
  { name: 'api.token', structure: 'text', seeds: [text(`${'ab'.repeat(32)}\n`)], load: h => h.loadApiToken() },
  { name: 'daemon.json', structure: 'json', seeds: [json({ pid: 1234, apiPort: 7710, startedAt: NOW }), json({ pid: 1, apiPort: 0, startedAt: 0, apiSocket: '/var/lib/mycelium/api.sock' })], load: h => h.loadDaemonInfo() },
  {
    name: 'invites.json',
    structure: 'json',
    seeds: [json([{ id: toBase64Url(new Uint8Array(16).fill(1)), secret: toBase64Url(new Uint8Array(32).fill(2)), createdAt: NOW, expiresAt: NOW + 3600_000, usesLeft: 1 }, { id: toBase64Url(new Uint8Array(16).fill(3)), secret: toBase64Url(new Uint8Array(32).fill(4)), createdAt: NOW, expiresAt: NOW + 60_000, usesLeft: 0, certificateTtlMs: 43_200_000, forPeerId: member.peerId }])],
    load: h => new InviteBook(h).list()
  },
  { name: 'members.json', structure: 'json', seeds: [json([{ peerId: member.peerId, capabilities: ['member'], issuedAt: NOW, expiresAt: NOW + 1 }])], load: h => new MemberBook(h).list() },
  { name: 'revocations.json', structure: 'json', seeds: [json([toBase64Url(encodeRevocation(signRevocation(root.secretKey, network.networkId, member.peerId, NOW)))])], load: h => new RevocationList(h, network, { now: () => NOW }).list() },
  { name: 'bridges.json', structure: 'json', seeds: [json([{ id: '0123abcd', networkId: networkIdOf(keyOf('other').publicKey), networkName: 'other', topics: ['chat'], ratePerS: 10, createdAt: NOW }])], load: h => new BridgeBook(h).list() },
  // the vote files are set aside when they do not decode: loading them must never throw
  { name: 'vm-leases.json', structure: 'json', seeds: [json({ 'vm-1': { term: 3, holder: '12D3KooWA', group: { generation: 1, voters: ['12D3KooWA', '12D3KooWB'] }, durationMs: 3000 } })], load: h => fileVoterStore(h.path('vm-leases.json')).load() },
  {
    name: 'bft-votes.cbor',
    structure: 'cbor',
    seeds: [encodeCanonical({ 'epoch:7': { committed: { attempt: 1, round: new Uint8Array(32), inputDigest: new Uint8Array(32), result: new Uint8Array(4), nonce: new Uint8Array(32) }, proposed: { attempt: 1, proposal: new Uint8Array(90) } } })],
    load: h => { const store = new FileVoteStore(h.path('bft-votes.cbor')); return store.get('epoch:7') ?? null }
  }
]

// One scratch home for the whole run, emptied between inputs: a file per exec is cheap next to a mkdtemp.
let scratch: string | undefined

function homeWith (file: HomeFile, content: Uint8Array): Home {
  scratch ??= mkdtempSync(join(tmpdir(), 'mycelium-fuzz-home-'))
  for (const f of FILES) {
    for (const name of [f.name, `${f.name}.broken`]) if (existsSync(join(scratch, name))) rmSync(join(scratch, name))
  }
  writeFileSync(join(scratch, file.name), content)
  return new Home(scratch)
}

export function removeScratchHome (): void {
  if (scratch !== undefined) rmSync(scratch, { recursive: true, force: true })
  scratch = undefined
}

/** The first byte picks the file, the rest is its content. */
function tagged (index: number): (content: Uint8Array) => Uint8Array {
  return (content) => new Uint8Array([index, ...content])
}

export const homeFilesTarget: FuzzTarget = {
  name: 'home-files',
  what: 'node/home loaders of network, keys, certificate, bootstrap, known peers, token, daemon info, invites, members, revocations, bridges, vote files',
  layers: FILES.map((f, i): Layer => ({ name: f.name, structure: f.structure, seeds: f.seeds, wrap: tagged(i) })),
  decode: (input) => {
    const file = FILES[(input[0] ?? 0) % FILES.length]
    try {
      return file.load(homeWith(file, input.subarray(1)))
    } catch (err) {
      // the refusal must come from a check, not from the validator tripping over the content
      if (err instanceof HomeError && err.cause !== undefined && rejectionOf(err.cause) === undefined && (err.cause as Error).constructor !== Error) {
        throw new FuzzFailure(`${file.name}: the validator crashed inside HomeError: ${(err.cause as Error).name}: ${(err.cause as Error).message}`)
      }
      throw err
    }
  }
}

export const homeTargets = [homeFilesTarget]
