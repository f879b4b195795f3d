// The value schema of every entry type. Each ValueCodec is the type, the validator and (with
// the canonical CBOR of the entry) the codec: `parse` runs on decode and before signing.
import { encodeCanonical } from '../../crypto/index.ts'
import { str, oneOf, uint, num, bool, bytes, list, scalarMap, struct, SchemaError, type Parser } from './schema.ts'

const PEER_ID = /^[1-9A-HJ-NP-Za-km-z]{40,60}$/
/** An application's name (workloads): part of gateway URLs (/app/NAME/) and of entry keys. */
export const APP_NAME = /^[a-z0-9][a-z0-9-]{0,47}$/
export const BUNDLE_DIGEST = /^[0-9a-f]{64}$/
/** Room for an encoded operator grant (membership/operator-grant.ts). */
const MAX_GRANT_BYTES = 384
const MAX_INSTANCES = 1024
const NAME = /^[A-Za-z0-9._-]{1,64}$/
const multiaddrOrUrl = str(256, /^(\/|[a-z][a-z0-9+.-]*:\/\/)/)

export const peerId = str(64, PEER_ID)

/** Node labels (`mycelium start --label zone=garage`), which applications' placement may ask for. */
const labels = scalarMap(16)

const nodeValue = struct({
  addrs: list(str(256, /^\//), 16),
  role: str(32, /^[a-z-]{1,32}$/),
  hardware: scalarMap(32),
  labels
}, ['labels'])

const healthValue = struct({
  status: oneOf('ok', 'degraded', 'down'),
  load: num(0, 1e6),
  memFreeMiB: uint(),
  diskFreeGiB: uint()
}, ['diskFreeGiB'])

/** Authority over trust is decided by who signs (see authority.ts); `certificate` carries a quorum proof when a committee issued it. */
const trustValue = struct({
  score: num(0, 1),
  reason: str(128),
  certificate: bytes(64 * 1024)
}, ['certificate'])

const usageValue = struct({
  cpu: num(0, 1),
  memoryMiB: uint(),
  rxBytes: uint(),
  txBytes: uint(),
  periodS: uint(86_400 * 7)
})

/** events: [at (ms), 'c' | 'd'] pairs, oldest first; replaced by counts once the peer is intermittent. */
const connectionValue = struct({
  remote: peerId,
  state: oneOf('connected', 'disconnected'),
  since: uint(),
  events: list(struct({ at: uint(), kind: oneOf('c', 'd') }), 64),
  intermittent: bool(),
  connects: uint(),
  disconnects: uint()
}, ['events', 'intermittent', 'connects', 'disconnects'])

const uptimeValue = struct({
  since: uint(),
  uptimeS: uint(),
  epochs: uint()
}, ['epochs'])

/** `digest` and `health` are set on the endpoints of an application instance (workloads). */
const serviceValue = struct({
  name: str(64, NAME),
  endpoints: list(multiaddrOrUrl, 16),
  protocol: str(128),
  digest: str(64, BUNDLE_DIGEST),
  health: oneOf('starting', 'healthy', 'unhealthy', 'done'),
  /** a finished job's exit code */
  exit: uint(255)
}, ['protocol', 'digest', 'health', 'exit'])

const planFields = struct({
  digest: str(64, BUNDLE_DIGEST),
  min: uint(MAX_INSTANCES),
  max: uint(MAX_INSTANCES),
  roles: list(oneOf('sclerotium', 'rhizomorph', 'hyphae'), 3),
  arch: list(oneOf('x86_64', 'aarch64'), 2),
  /** what one instance needs (from the bundle's manifest), so nodes place it without fetching the bundle */
  memoryMb: uint(65_536),
  cpuMillis: uint(64_000),
  kind: oneOf('service', 'job'),
  /** labels a node must carry to run it (from the manifest) */
  labels,
  /** the fixed group whose majority grants the lease of a single-instance (max 1) application */
  voters: list(peerId, 7),
  /** an operator grant, when the signer is not the network root itself */
  grant: bytes(MAX_GRANT_BYTES),
  /** the bundles earlier plans of the name named: their instances give way one at a time (a rolling upgrade) */
  from: list(str(64, BUNDLE_DIGEST), 4)
}, ['roles', 'arch', 'grant', 'memoryMb', 'cpuMillis', 'kind', 'voters', 'labels', 'from'])

/** The desired state of an application: how many instances of which bundle, where. min = max = 0 removes it. */
const planValue: Parser<ReturnType<typeof planFields>> = (raw, at) => {
  const plan = planFields(raw, at)
  if (plan.min > plan.max) throw new SchemaError(`${at}: min ${plan.min} is above max ${plan.max}`)
  return plan
}

/** A node holds this bundle and serves it to members that fetch it. */
const bundleValue = struct({
  digest: str(64, BUNDLE_DIGEST),
  name: str(48, APP_NAME),
  size: uint(1024 ** 3)
})

/**
 * Evidence that the key's peer broke the protocol in a way only a Byzantine member can
 * (consensus/evidence.ts: two different signed votes for one round, or signatures on two
 * conflicting certificates). It rests on the accused's own signatures, so who carries it does
 * not matter; authority.ts checks it. Larger evidence (two whole proposals) is not recordable.
 */
export const MAX_EXCLUSION_EVIDENCE_BYTES = 64 * 1024
const exclusionValue = struct({
  evidence: bytes(MAX_EXCLUSION_EVIDENCE_BYTES)
})

const roleValue = struct({
  role: str(32, /^[a-z-]{1,32}$/),
  reason: str(256)
}, ['reason'])

export interface ValueCodec<V> {
  readonly type: string
  /** Temporal data is dropped once its issuedAt falls outside the configured window. */
  readonly temporal: boolean
  /** Checks an untrusted decoded value; returns it typed or throws SchemaError. */
  readonly parse: Parser<V>
  /** The canonical bytes of a value, checked first: nothing invalid is ever encoded. */
  readonly encode: (value: V) => Uint8Array
}

function codec<V> (type: string, temporal: boolean, parse: Parser<V>): ValueCodec<V> {
  return { type, temporal, parse, encode: (value) => encodeCanonical(parse(value, `${type}.value`)) }
}

export const ENTRY_CODECS = {
  node: codec('node', false, nodeValue),
  health: codec('health', true, healthValue),
  trust: codec('trust', false, trustValue),
  usage: codec('usage', true, usageValue),
  connection: codec('connection', true, connectionValue),
  uptime: codec('uptime', true, uptimeValue),
  service: codec('service', false, serviceValue),
  role: codec('role', false, roleValue),
  plan: codec('plan', false, planValue),
  bundle: codec('bundle', false, bundleValue),
  exclusion: codec('exclusion', false, exclusionValue)
} as const

type Codecs = typeof ENTRY_CODECS
export type EntryType = keyof Codecs
export type EntryValue<T extends EntryType> = ReturnType<Codecs[T]['parse']>
export type NodeValue = EntryValue<'node'>
export type HealthValue = EntryValue<'health'>
export type TrustValue = EntryValue<'trust'>
export type UsageValue = EntryValue<'usage'>
export type ConnectionValue = EntryValue<'connection'>
export type UptimeValue = EntryValue<'uptime'>
export type ServiceValue = EntryValue<'service'>
export type RoleValue = EntryValue<'role'>
export type PlanValue = EntryValue<'plan'>
export type BundleValue = EntryValue<'bundle'>
export type ExclusionValue = EntryValue<'exclusion'>

export const ENTRY_TYPES = Object.keys(ENTRY_CODECS) as EntryType[]

export function isEntryType (value: unknown): value is EntryType {
  return typeof value === 'string' && Object.hasOwn(ENTRY_CODECS, value)
}
