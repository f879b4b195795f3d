// `mycelium app …`: applications (endomycetes). Pack a directory into a signed bundle, publish
// it to the network, plan how many instances run where, and watch them. Bundles and plans are
// signed with the network root key when this home holds it, else with this node's key and the
// operator grant the administrator gave it (`network grant-operator`, then `app use-grant`).
import { writeFileSync, existsSync } from 'node:fs'
import { resolve, basename, join } from 'node:path'
import { UsageError, parseDuration } from '../args.ts'
import type { Command } from '../command.ts'
import { api, printJson, type CommandContext } from '../context.ts'
import { HomeError } from '../../home/index.ts'
import { packDirectory, InvalidManifestError, InvalidBundleError } from '../../../workloads/bundle/index.ts'
import { signOperatorGrant, operatorGrantToken, InvalidOperatorGrantError } from '../../../membership/index.ts'
import { loadOperatorGrant, saveOperatorGrant } from '../../workloads/index.ts'
import { followLog } from '../../../workloads/runner/follow-log.ts'

const DEFAULT_OPERATOR_TTL = '90d'

function signingKey (ctx: CommandContext): { secretKey: Uint8Array, grant?: Uint8Array } {
  const network = ctx.home.loadNetwork()
  if (network === undefined) throw new HomeError(`${ctx.home.dir} is in no network yet: run mycelium network create <name> or mycelium join <invite>`)
  const root = ctx.home.loadRootKey(network)
  if (root !== undefined) return { secretKey: root }
  const grant = loadOperatorGrant(ctx.home)
  if (grant === undefined) throw new HomeError('this node holds neither the network root key nor an operator grant: on the administrator node run mycelium network grant-operator <this node\'s peer id>, then here mycelium app use-grant <token>')
  return { secretKey: ctx.home.loadNodeKey().raw.subarray(0, 32), grant }
}

interface InstanceView { peerId: string, digest: string, health: string, exitCode?: number, restarts?: number, state?: string, limits?: Record<string, unknown> }
interface AppView { name: string, digest: string, kind?: string, min: number, max: number, certified: boolean, removed?: boolean, hosts?: string[], instances: InstanceView[], pending?: { digest: string, min: number, max: number }, local?: Record<string, unknown>, localFailure?: { reason: string }, unfit?: Array<{ peerId: string, why: string }>, rollout?: { state: 'rolling' | 'stuck', from: string[], ready: number, wanted: number, old: number, why: string } }

function short (id: string): string {
  return id.length > 16 ? `…${id.slice(-8)}` : id
}

export const appPack: Command = {
  name: 'app pack',
  usage: 'mycelium app pack DIR [--out FILE] [--json]',
  summary: 'sign DIR (DIR/manifest.json and its files) into one bundle file; prints its path',
  flags: { out: { type: 'string' } },
  async run (ctx, { positional, flags }) {
    if (positional.length !== 1) throw new UsageError('usage: mycelium app pack DIR [--out FILE]')
    const dir = resolve(positional[0])
    const key = signingKey(ctx)
    let packed
    try {
      packed = await packDirectory(dir, key)
    } catch (err) {
      if (err instanceof InvalidManifestError || err instanceof InvalidBundleError) throw new UsageError(err.message)
      throw new UsageError(`cannot pack ${dir}: ${(err as Error).message}`)
    }
    const out = resolve((flags.out as string | undefined) ?? `${packed.manifest.name}-${packed.manifest.version}.spore`)
    if (existsSync(out) && basename(out) !== basename(resolve(dir))) {
      // a bundle of the same name and version is replaced only by the same bytes' owner: say so
      ctx.err(`replacing ${out}`)
    }
    writeFileSync(out, packed.bytes)
    if (ctx.json) { printJson(ctx, { file: out, digest: packed.digest, name: packed.manifest.name, version: packed.manifest.version, size: packed.bytes.length }); return }
    ctx.out(out)
    ctx.err(`digest ${packed.digest}`)
  }
}

export const appPublish: Command = {
  name: 'app publish',
  usage: 'mycelium app publish FILE [--json]',
  summary: 'store a bundle in the network (this node holds it and serves it to the nodes that run it)',
  async run (ctx, { positional }) {
    if (positional.length !== 1) throw new UsageError('usage: mycelium app publish FILE')
    const r = await api(ctx).request<{ digest: string, name: string, version: string, size: number }>('POST', '/apps/publish', { file: resolve(positional[0]) })
    if (ctx.json) { printJson(ctx, r); return }
    ctx.out(r.digest)
    ctx.err(`${r.name} ${r.version}, ${r.size} bytes; plan it with: mycelium app plan ${r.name} --digest ${r.digest} --min 1`)
  }
}

export const appPlan: Command = {
  name: 'app plan',
  usage: 'mycelium app plan NAME --digest D [--min N] [--max N] [--role R]... [--arch any|x86_64|aarch64] [--json]',
  summary: 'set how many instances of a published bundle run, and where (agreed in the primary spore)',
  flags: { digest: { type: 'string' }, min: { type: 'string' }, max: { type: 'string' }, role: { type: 'list' }, arch: { type: 'string' } },
  async run (ctx, { positional, flags }) {
    if (positional.length !== 1 || typeof flags.digest !== 'string') throw new UsageError('usage: mycelium app plan NAME --digest D [--min N] [--max N] [--role R]... [--arch any|x86_64|aarch64]')
    const num = (v: unknown, what: string): number | undefined => {
      if (v === undefined) return undefined
      const n = Number(v)
      if (!Number.isInteger(n) || n < 0) throw new UsageError(`--${what} must be a whole number`)
      return n
    }
    const roles = flags.role as string[] | undefined
    const r = await api(ctx).request<Record<string, unknown>>('POST', '/apps/plan', {
      name: positional[0], digest: flags.digest, min: num(flags.min, 'min'), max: num(flags.max, 'max'),
      ...(roles === undefined || roles.length === 0 ? {} : { roles }), ...(flags.arch === undefined ? {} : { arch: flags.arch })
    })
    if (ctx.json) { printJson(ctx, r); return }
    ctx.out(`planned ${String(r.name)}: ${String(r.min)}-${String(r.max)} instance(s) of ${String(r.digest).slice(0, 12)} on ${(r.roles as string[]).join('/')} (${String(r.arch)})`)
    ctx.err(String(r.note))
  }
}

export const appRm: Command = {
  name: 'app rm',
  usage: 'mycelium app rm NAME [--json]',
  summary: 'remove an application: its plan asks for no instance, and every instance stops',
  async run (ctx, { positional }) {
    if (positional.length !== 1) throw new UsageError('usage: mycelium app rm NAME')
    const r = await api(ctx).request<Record<string, unknown>>('POST', '/apps/rm', { name: positional[0] })
    if (ctx.json) { printJson(ctx, r); return }
    ctx.out(`removed ${positional[0]}: its instances stop once the plan is in force`)
  }
}

interface BundlesHere { held: Array<{ digest: string, size: number, kept?: string }>, graceMs: number, removed: number, removedBytes: number }

function mib (bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`
}

function describe (a: AppView): string[] {
  const healthy = a.instances.filter(i => i.health === 'healthy').length
  const lines = [`${a.name}  ${a.kind ?? 'service'}  ${a.removed === true ? 'removed' : `${a.min}-${a.max} wanted, ${healthy} healthy`}  bundle ${a.digest.slice(0, 12)}${a.certified ? '' : '  (not certified)'}`]
  if (a.rollout !== undefined) lines.push(`  rollout ${a.rollout.state === 'stuck' ? 'STUCK' : 'under way'} from ${a.rollout.from.map(d => d.slice(0, 12)).join(', ')}: ${a.rollout.ready} of ${a.rollout.wanted} new healthy, ${a.rollout.old} old running; ${a.rollout.why}`)
  if (a.pending !== undefined) lines.push(`  pending: ${a.pending.min}-${a.pending.max} of ${a.pending.digest.slice(0, 12)} (waits for the next certified epoch)`)
  for (const i of a.instances) lines.push(`  ${short(i.peerId)}  ${i.health}${i.exitCode === undefined ? '' : ` exit ${i.exitCode}`}${i.restarts === undefined ? '' : `  restarts ${i.restarts}`}${i.digest === a.digest ? '' : `  (old bundle ${i.digest.slice(0, 12)})`}`)
  if (a.localFailure !== undefined) lines.push(`  here: could not start: ${a.localFailure.reason}`)
  return lines
}

export const appLs: Command = {
  name: 'app ls',
  usage: 'mycelium app ls [--json]',
  summary: 'planned applications with their instances and health',
  async run (ctx, { positional }) {
    if (positional.length > 0) throw new UsageError('usage: mycelium app ls')
    const apps = await api(ctx).request<AppView[]>('GET', '/apps')
    if (ctx.json) { printJson(ctx, apps); return }
    if (apps.length === 0) ctx.out('no applications are planned')
    for (const a of apps) ctx.out(describe(a).join('\n'))
    const b = await api(ctx).request<BundlesHere>('GET', '/apps/bundles')
    const removable = b.held.filter(h => h.kept === undefined).length
    ctx.out(`bundles here: ${b.held.length} (${mib(b.held.reduce((n, h) => n + h.size, 0))})${removable === 0 ? '' : `, ${removable} unused (removed ${b.graceMs < 120_000 ? `${Math.round(b.graceMs / 1000)} s` : `${Math.round(b.graceMs / 60_000)} min`} after they were stored)`}; ${b.removed} removed since start (${mib(b.removedBytes)})`)
  }
}

export const appStatus: Command = {
  name: 'app status',
  usage: 'mycelium app status NAME [--json]',
  summary: 'one application: plan, hosts, instances, restarts, and which limits this node enforces',
  async run (ctx, { positional }) {
    if (positional.length !== 1) throw new UsageError('usage: mycelium app status NAME')
    const a = await api(ctx).request<AppView>('GET', `/apps/status?name=${encodeURIComponent(positional[0])}`)
    if (ctx.json) { printJson(ctx, a); return }
    const lines = describe(a)
    if (a.hosts !== undefined) lines.push(`  hosts by placement: ${a.hosts.map(short).join(', ') || 'none fit'}`)
    for (const u of a.unfit ?? []) lines.push(`  ${short(u.peerId)} cannot run it: ${u.why}`)
    const limits = a.local?.limits as Record<string, unknown> | undefined
    if (limits !== undefined) lines.push(`  limits here: cgroup ${String(limits.cgroup)}, memory ${limits.memory === true ? 'enforced' : 'not enforced'}, cpu ${limits.cpu === true ? 'enforced' : 'not enforced'}, pids ${limits.pids === true ? 'enforced' : 'not enforced'}${limits.reason === undefined ? '' : ` (${String(limits.reason)})`}`)
    ctx.out(lines.join('\n'))
  }
}

export const appLogs: Command = {
  name: 'app logs',
  usage: 'mycelium app logs NAME [--stderr] [-f|--follow] [--node PEER]',
  summary: 'the output of an application\'s instance, on this node or another (follow it as it is written with -f)',
  flags: { stderr: { type: 'boolean' }, follow: { type: 'boolean', short: 'f' }, node: { type: 'string' } },
  async run (ctx, { positional, flags }) {
    if (positional.length !== 1) throw new UsageError('usage: mycelium app logs NAME [--stderr] [-f] [--node PEER]')
    const stream = flags.stderr === true ? 'stderr' : 'stdout'
    // --node: the instance on that node (a peer id, or its last characters as app status shows them)
    const node = flags.node === undefined ? '' : `&node=${encodeURIComponent(String(flags.node).replace(/^…/, ''))}`
    // the application wherever it runs: the daemon follows the instance and, when it goes away,
    // the one that runs then (log-follow-lines.ts)
    if (flags.follow === true && flags.node === undefined) { await followRemote(ctx, positional[0], `stream=${stream}`); return }
    const ask = async (tail: number): Promise<{ text: string, local?: boolean }> => await api(ctx).request<{ text: string, local?: boolean }>('GET', `/apps/logs?name=${encodeURIComponent(positional[0])}&stream=${stream}&tail=${tail}${node}`)
    const first = await ask(flags.follow === true ? 0 : 64 * 1024)
    // --node naming this node: its files are in this home, so the follow reads them and wakes
    // on their change events (follow-log.ts), from the very byte the tail ends at
    // (the daemon checked the name before it answered: a name never leaves the home)
    const logDir = join(ctx.home.path('apps/instances'), positional[0], 'logs')
    if (flags.follow === true && first.local === true && existsSync(logDir)) {
      await followLog(logDir, stream, (text) => { process.stdout.write(text) }, new AbortController().signal, { tailBytes: 64 * 1024 })
      return
    }
    if (flags.follow !== true) { process.stdout.write(first.text); return }
    await followRemote(ctx, positional[0], `stream=${stream}${node}`)
  }
}

/** Said when a follow of another node's instance ends other than by the instance stopping. */
export class LogFollowEndedError extends Error {
  readonly name = 'LogFollowEndedError'
}

type FollowLine = { node: string, of?: number } | { moved: string } | { text: string } | { end: string, why: string, ok: boolean } | { error: string }

/**
 * The daemon follows the instance (its own files, or one stream to the node that runs it, which
 * pushes each line as it is written: app-log-follow/1.0.0) and passes the output on here; when
 * the instance goes away it goes on with the one that runs then, and says so on stderr. The
 * follow ends with one line on stderr: the application was removed, or (pinned with --node) the
 * instance stopped (exit 0); the node was lost or left (pinned), or cut this follower off for
 * not keeping up (exit 1).
 */
async function followRemote (ctx: CommandContext, name: string, query: string): Promise<void> {
  const lines = api(ctx).stream<FollowLine>(`/apps/logs/follow?name=${encodeURIComponent(name)}&${query}&tail=${64 * 1024}`)
  for await (const line of lines) {
    if ('node' in line) {
      ctx.err(`following ${name} on …${line.node.slice(-8)}${(line.of ?? 1) > 1 ? ` (one of ${line.of} instances; --node PEER follows another)` : ''}`)
    } else if ('moved' in line) {
      ctx.err(`-- following ${name} on …${line.moved.slice(-8)} now`)
    } else if ('text' in line) {
      // a slow terminal or pipe holds the stream back rather than filling memory here
      if (!process.stdout.write(line.text)) await new Promise(resolve => process.stdout.once('drain', resolve))
    } else if ('end' in line) {
      if (!line.ok) throw new LogFollowEndedError(line.why)
      ctx.err(line.why)
      return
    } else if ('error' in line) {
      throw new LogFollowEndedError(`the follow of ${name} broke: ${line.error}`)
    }
  }
  throw new LogFollowEndedError(`the daemon ended the follow of ${name} without saying why`)
}

export const appUseGrant: Command = {
  name: 'app use-grant',
  usage: 'mycelium app use-grant TOKEN',
  summary: 'keep the operator grant (mycop1.…) the administrator gave this node, to sign bundles and plans',
  async run (ctx, { positional }) {
    if (positional.length !== 1) throw new UsageError('usage: mycelium app use-grant TOKEN')
    try {
      saveOperatorGrant(ctx.home, positional[0])
    } catch (err) {
      if (err instanceof InvalidOperatorGrantError) throw new UsageError(err.message)
      throw err
    }
    ctx.out('operator grant stored: this node may now pack bundles and plan applications')
  }
}

export const networkGrantOperator: Command = {
  name: 'network grant-operator',
  usage: 'mycelium network grant-operator <peerId> [--ttl 90d] [--json]',
  summary: 'let a member sign bundles and plans of this network; prints the grant for it (app use-grant)',
  flags: { ttl: { type: 'string' } },
  async run (ctx, { positional, flags }) {
    if (positional.length !== 1) throw new UsageError('usage: mycelium network grant-operator <peerId> [--ttl 90d]')
    const ttlMs = parseDuration((flags.ttl as string | undefined) ?? DEFAULT_OPERATOR_TTL)
    const network = ctx.home.loadNetwork()
    if (network === undefined) throw new HomeError(`${ctx.home.dir} is in no network yet`)
    const root = ctx.home.loadRootKey(network)
    if (root === undefined) throw new HomeError(`this node does not hold the root key of network ${network.name}; grant operators on its administrator node`)
    let grant
    try {
      grant = signOperatorGrant(root, { operator: positional[0], issuedAt: Date.now(), ttlMs })
    } catch (err) {
      throw new UsageError(err instanceof InvalidOperatorGrantError ? err.message : `"${positional[0].slice(0, 80)}" is not a peer id`)
    }
    const token = operatorGrantToken(grant)
    if (ctx.json) { printJson(ctx, { grant: token, operator: positional[0], expiresAt: grant.expiresAt }); return }
    ctx.out(token)
    ctx.err(`valid until ${new Date(grant.expiresAt).toISOString().slice(0, 10)}; plans it signs end then. On that node run: mycelium app use-grant <grant>`)
  }
}
