// The application manifest: what an application is, how it starts and where it may run. It
// comes from an author's manifest.json or from a bundle off the network, so parseManifest is
// the one gate: every field checked, unknown fields refused (a misspelt "helth" must not pass
// as "no health check"), defaults filled, so the code after it reads one complete value.
import { pathProblem } from './bundle-path.ts'
import { InvalidManifestError } from './errors.ts'
import { shown } from './shown.ts'

export type AppKind = 'service' | 'job'
export type Arch = 'x86_64' | 'aarch64'
export type PlacementRole = 'sclerotium' | 'rhizomorph' | 'hyphae'

export interface AppResources {
  cpuMillis: number
  memoryMb: number
}

export interface AppPlacement {
  roles: PlacementRole[]
  arch: 'any' | Arch[]
  labels: Record<string, string>
}

export interface AppManifest {
  /** Appears in URLs (/app/NAME/) and in entry keys. */
  name: string
  version: string
  kind: AppKind
  /** A service's program: a file in the bundle ("server.js", "bin/app") or a program on PATH ("node"). */
  command?: string
  args?: string[]
  /** A job's module: the path of a .wasm file in the bundle. */
  wasm?: string
  /** A service's native executable per architecture; where present it is run instead of `command`. */
  binaries?: Partial<Record<Arch, string>>
  env?: Record<string, string>
  resources: AppResources
  health?: { http: string }
  placement: AppPlacement
}

export const ARCHES: readonly Arch[] = ['x86_64', 'aarch64']
const KINDS: readonly AppKind[] = ['service', 'job']
const ROLES: readonly PlacementRole[] = ['sclerotium', 'rhizomorph', 'hyphae']

const NAME = /^[a-z0-9][a-z0-9-]{0,47}$/
const VERSION = /^[A-Za-z0-9._+-]{1,32}$/
const ENV_NAME = /^[A-Z_][A-Z0-9_]{0,63}$/
const LABEL_KEY = /^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$/
const CONTROL = /[\u0000-\u001f\u007f]/

const MAX_ARGS = 64
const MAX_ARG_LENGTH = 1024
const MAX_ENV = 64
const MAX_ENV_VALUE_LENGTH = 4096
const MAX_LABELS = 32
const MAX_LABEL_VALUE_LENGTH = 256
const MAX_HEALTH_PATH_LENGTH = 256
const CPU_MILLIS = { min: 1, max: 64_000, default: 500 }
const MEMORY_MB = { min: 1, max: 65_536, default: 128 }
/** The node chooses the port a service listens on and passes it in PORT. */
const RESERVED_ENV = 'PORT'

const FIELDS = ['name', 'version', 'kind', 'command', 'args', 'wasm', 'binaries', 'env', 'resources', 'health', 'placement']

/** Checks an author's or a peer's manifest and returns it complete (defaults filled in). */
export function parseManifest (raw: unknown): AppManifest {
  const m = objectAt(raw, 'manifest', FIELDS)
  const name = matching(m.name, 'name', NAME, 'lower-case letters, digits and -, starting with a letter or digit, at most 48 characters')
  const version = matching(m.version, 'version', VERSION, '1 to 32 of A-Z a-z 0-9 . _ + -')
  const kind = oneOf(m.kind, 'kind', KINDS)
  const command = m.command === undefined ? undefined : bundleFileOrProgram(m.command)
  const args = m.args === undefined ? undefined : argsOf(m.args)
  const wasm = m.wasm === undefined ? undefined : wasmOf(m.wasm)
  const binaries = m.binaries === undefined ? undefined : binariesOf(m.binaries)
  const env = m.env === undefined ? undefined : envOf(m.env)
  const resources = resourcesOf(m.resources)
  const health = m.health === undefined ? undefined : healthOf(m.health)

  if (kind === 'service') {
    if (command === undefined && binaries === undefined) throw new InvalidManifestError('a service needs command (a file in the bundle or a program on PATH) or binaries')
    if (wasm !== undefined) throw new InvalidManifestError('wasm is for jobs; a service runs command or binaries')
  } else {
    if (wasm === undefined) throw new InvalidManifestError('a job needs wasm (the path of its .wasm module in the bundle)')
    if (command !== undefined || binaries !== undefined) throw new InvalidManifestError('command and binaries are for services; a job runs its wasm module')
  }
  // without a command to fall back on, the bundle runs only where it has a binary
  const placement = placementOf(m.placement, command === undefined ? binaries : undefined)

  const manifest: AppManifest = { name, version, kind, resources, placement }
  if (command !== undefined) manifest.command = command
  if (args !== undefined) manifest.args = args
  if (wasm !== undefined) manifest.wasm = wasm
  if (binaries !== undefined) manifest.binaries = binaries
  if (env !== undefined) manifest.env = env
  if (health !== undefined) manifest.health = health
  return manifest
}

function bundleFileOrProgram (value: unknown): string {
  const problem = pathProblem(value)
  if (problem !== undefined) throw new InvalidManifestError(`command ${shown(value)} ${problem}; it must be a path in the bundle (without ./) or a program name`)
  return value as string
}

function argsOf (value: unknown): string[] {
  if (!Array.isArray(value) || value.length > MAX_ARGS) throw new InvalidManifestError(`args must be an array of at most ${MAX_ARGS} strings, got ${shown(value)}`)
  return value.map((arg, i) => {
    if (typeof arg !== 'string' || arg.length > MAX_ARG_LENGTH || arg.includes('\u0000')) throw new InvalidManifestError(`args[${i}] must be a string of at most ${MAX_ARG_LENGTH} characters without NUL, got ${shown(arg)}`)
    return arg
  })
}

function wasmOf (value: unknown): string {
  const problem = pathProblem(value)
  if (problem !== undefined) throw new InvalidManifestError(`wasm ${shown(value)} ${problem}; it must be a path in the bundle (without ./)`)
  if (!(value as string).endsWith('.wasm')) throw new InvalidManifestError(`wasm ${shown(value)} must name a .wasm file`)
  return value as string
}

function binariesOf (value: unknown): Partial<Record<Arch, string>> {
  const raw = objectAt(value, 'binaries', ARCHES)
  const binaries: Partial<Record<Arch, string>> = {}
  for (const arch of ARCHES) {
    if (raw[arch] === undefined) continue
    const problem = pathProblem(raw[arch])
    if (problem !== undefined) throw new InvalidManifestError(`binaries.${arch} ${shown(raw[arch])} ${problem}; it must be a path in the bundle (without ./)`)
    binaries[arch] = raw[arch] as string
  }
  if (Object.keys(binaries).length === 0) throw new InvalidManifestError(`binaries must name an executable for at least one of ${ARCHES.join(', ')}`)
  return binaries
}

function envOf (value: unknown): Record<string, string> {
  const raw = objectAt(value, 'env')
  const names = Object.keys(raw)
  if (names.length > MAX_ENV) throw new InvalidManifestError(`env has ${names.length} variables, at most ${MAX_ENV} are allowed`)
  const env: Record<string, string> = {}
  for (const name of names) {
    if (!ENV_NAME.test(name)) throw new InvalidManifestError(`env name ${shown(name)} must be upper-case letters, digits and _, not starting with a digit, at most 64 characters`)
    if (name === RESERVED_ENV) throw new InvalidManifestError(`env.${RESERVED_ENV} is reserved: the node chooses the port a service listens on and sets it`)
    const v = raw[name]
    if (typeof v !== 'string' || v.length > MAX_ENV_VALUE_LENGTH || v.includes('\u0000')) throw new InvalidManifestError(`env.${name} must be a string of at most ${MAX_ENV_VALUE_LENGTH} characters without NUL, got ${shown(v)}`)
    env[name] = v
  }
  return env
}

function resourcesOf (value: unknown): AppResources {
  if (value === undefined) return { cpuMillis: CPU_MILLIS.default, memoryMb: MEMORY_MB.default }
  const raw = objectAt(value, 'resources', ['cpuMillis', 'memoryMb'])
  return {
    cpuMillis: integerIn(raw.cpuMillis, 'resources.cpuMillis', CPU_MILLIS),
    memoryMb: integerIn(raw.memoryMb, 'resources.memoryMb', MEMORY_MB)
  }
}

function healthOf (value: unknown): { http: string } {
  const raw = objectAt(value, 'health', ['http'])
  const http = raw.http
  if (typeof http !== 'string' || !http.startsWith('/') || http.length > MAX_HEALTH_PATH_LENGTH || /[\s\u0000-\u001f\u007f]/.test(http)) {
    throw new InvalidManifestError(`health.http must be a URL path starting with / (at most ${MAX_HEALTH_PATH_LENGTH} characters, no spaces), got ${shown(http)}`)
  }
  return { http }
}

function placementOf (value: unknown, onlyBinaries: Partial<Record<Arch, string>> | undefined): AppPlacement {
  const raw = value === undefined ? {} : objectAt(value, 'placement', ['roles', 'arch', 'labels'])
  const roles = raw.roles === undefined ? ['sclerotium', 'rhizomorph'] as PlacementRole[] : distinctList(raw.roles, 'placement.roles', ROLES)
  const covered = onlyBinaries === undefined ? undefined : ARCHES.filter(a => onlyBinaries[a] !== undefined)
  let arch: 'any' | Arch[]
  if (raw.arch === undefined) arch = covered ?? 'any'
  else if (raw.arch === 'any') arch = 'any'
  else arch = distinctList(raw.arch, 'placement.arch', ARCHES, '"any" or ')
  if (covered !== undefined) {
    const missing = (arch === 'any' ? ARCHES : arch).filter(a => !covered.includes(a))
    if (missing.length > 0) throw new InvalidManifestError(`placement.arch includes ${missing.join(', ')} but binaries has no executable for it and there is no command to run instead`)
  }
  return { roles, arch, labels: raw.labels === undefined ? {} : labelsOf(raw.labels) }
}

function labelsOf (value: unknown): Record<string, string> {
  const raw = objectAt(value, 'placement.labels')
  const keys = Object.keys(raw)
  if (keys.length > MAX_LABELS) throw new InvalidManifestError(`placement.labels has ${keys.length} labels, at most ${MAX_LABELS} are allowed`)
  const labels: Record<string, string> = {}
  for (const key of keys) {
    if (!LABEL_KEY.test(key)) throw new InvalidManifestError(`placement.labels key ${shown(key)} must be 1 to 63 of A-Z a-z 0-9 . _ / -, starting with a letter or digit`)
    const v = raw[key]
    if (typeof v !== 'string' || v.length > MAX_LABEL_VALUE_LENGTH || CONTROL.test(v)) throw new InvalidManifestError(`placement.labels.${key} must be a string of at most ${MAX_LABEL_VALUE_LENGTH} characters without control characters, got ${shown(v)}`)
    labels[key] = v
  }
  return labels
}

/**
 * A JSON object or decoded CBOR map (whose prototype is null), never an array or a byte string.
 * With `known`, fields outside it are refused; a field set to undefined counts as absent.
 */
function objectAt (value: unknown, field: string, known?: readonly string[]): Record<string, unknown> {
  const prototype = typeof value === 'object' && value !== null ? Object.getPrototypeOf(value) : undefined
  if (prototype !== Object.prototype && prototype !== null) throw new InvalidManifestError(`${field} must be an object, got ${shown(value)}`)
  const o = value as Record<string, unknown>
  if (known !== undefined) {
    for (const key of Object.keys(o)) {
      if (!known.includes(key) && o[key] !== undefined) throw new InvalidManifestError(`${field} has an unknown field ${shown(key)} (known: ${known.join(', ')})`)
    }
  }
  return o
}

function matching (value: unknown, field: string, pattern: RegExp, what: string): string {
  if (typeof value !== 'string' || !pattern.test(value)) throw new InvalidManifestError(`${field} must be ${what}, got ${shown(value)}`)
  return value
}

function oneOf<T extends string> (value: unknown, field: string, allowed: readonly T[]): T {
  if (!allowed.includes(value as T)) throw new InvalidManifestError(`${field} must be one of ${allowed.join(', ')}, got ${shown(value)}`)
  return value as T
}

function distinctList<T extends string> (value: unknown, field: string, allowed: readonly T[], alternative = ''): T[] {
  if (!Array.isArray(value) || value.length === 0) throw new InvalidManifestError(`${field} must be ${alternative}a non-empty list of ${allowed.join(', ')}, got ${shown(value)}`)
  // ends by the first repeat at the latest, so a huge list costs no more than a short one
  value.forEach((v, i) => {
    oneOf(v, `${field}[${i}]`, allowed)
    if (value.indexOf(v) !== i) throw new InvalidManifestError(`${field} lists ${shown(v)} twice`)
  })
  return [...value] as T[]
}

function integerIn (value: unknown, field: string, range: { min: number, max: number, default: number }): number {
  if (value === undefined) return range.default
  if (!Number.isInteger(value) || (value as number) < range.min || (value as number) > range.max) throw new InvalidManifestError(`${field} must be an integer from ${range.min} to ${range.max}, got ${shown(value)}`)
  return value as number
}
