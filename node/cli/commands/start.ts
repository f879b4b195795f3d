import { hostname } from 'node:os'
import { UsageError, parsePort } from '../args.ts'
import type { Command } from '../command.ts'
import { createLogger } from '../../log/index.ts'
import { defaultNetworkName } from '../../network/index.ts'

export const start: Command = {
  name: 'start',
  usage: 'mycelium start [--listen MULTIADDR]... [--bootstrap MULTIADDR]... [--api-port N] [--http-listen HOST[:PORT]|off] [--http-port N] [--no-relay] [--role sclerotium|rhizomorph|hyphae|auto] [--epoch-interval-s N] [--bft-f N] [--bft-committee N]',
  summary: 'run the node in the foreground (creates a personal network on an empty home)',
  flags: { listen: { type: 'list' }, bootstrap: { type: 'list' }, 'api-port': { type: 'string' }, 'http-port': { type: 'string' }, 'http-listen': { type: 'string' }, 'no-relay': { type: 'boolean' }, role: { type: 'string' }, 'hardware-profile': { type: 'string' }, 'epoch-interval-s': { type: 'string' }, 'bft-f': { type: 'string' }, 'bft-committee': { type: 'string' }, 'bft-conduct': { type: 'string' }, label: { type: 'list' } },
  async run (ctx, { positional, flags }) {
    if (positional.length > 0) throw new UsageError(`start takes no arguments (got "${positional[0]}")`)
    const { Daemon, DEFAULT_API_PORT, DEFAULT_LISTEN } = await import('../../daemon/index.ts')
    const listen = (flags.listen as string[] | undefined) ?? DEFAULT_LISTEN
    const { multiaddr } = await import('@multiformats/multiaddr')
    for (const a of [...listen, ...((flags.bootstrap as string[] | undefined) ?? [])]) {
      try { multiaddr(a) } catch { throw new UsageError(`"${a}" is not a multiaddr (e.g. /ip4/127.0.0.1/tcp/0)`) }
    }
    const { isRoleOverride, hardwareProfileFromEnv, roleTimingFromEnv, HARDWARE_PROFILE_ENV } = await import('../../../roles/index.ts')
    const role = (flags.role as string | undefined) ?? 'auto'
    if (!isRoleOverride(role)) throw new UsageError(`--role must be sclerotium, rhizomorph, hyphae or auto (got "${role}")`)
    // hidden: makes this machine look like another one (tests, the multi-process harness)
    if (flags['hardware-profile'] !== undefined) process.env[HARDWARE_PROFILE_ENV] = flags['hardware-profile'] as string
    try {
      hardwareProfileFromEnv()
      roleTimingFromEnv()
    } catch (err) {
      throw new Error(`cannot start with this role set-up: ${(err as Error).message}`)
    }
    const consensus = await import('../../consensus/index.ts')
    if (flags['epoch-interval-s'] !== undefined) process.env[consensus.EPOCH_INTERVAL_ENV] = flags['epoch-interval-s'] as string
    if (flags['bft-f'] !== undefined) process.env[consensus.BFT_F_ENV] = flags['bft-f'] as string
    if (flags['bft-committee'] !== undefined) process.env[consensus.BFT_COMMITTEE_ENV] = flags['bft-committee'] as string
    // hidden: a Byzantine committee member, for tests with real processes
    if (flags['bft-conduct'] !== undefined) process.env[consensus.BFT_CONDUCT_ENV] = flags['bft-conduct'] as string
    try {
      consensus.consensusSettingsFromEnv()
    } catch (err) {
      throw new UsageError((err as Error).message)
    }
    const log = await createLogger()
    const daemon = new Daemon({
      homeDir: ctx.home.dir,
      listen,
      bootstrap: (flags.bootstrap as string[] | undefined) ?? [],
      apiPort: flags['api-port'] === undefined ? DEFAULT_API_PORT : parsePort(flags['api-port'] as string, 'api-port'),
      relayServer: flags['no-relay'] !== true,
      role,
      httpListen: httpListenOf(flags['http-listen'] as string | undefined, flags['http-port'] as string | undefined),
      labels: labelsOf(flags.label as string[] | undefined),
      defaultNetworkName: defaultNetworkName()
    }, log)
    await daemon.start()

    // no invite is made here: its secret would land in the log (the journal under systemd) and
    // on any terminal recording. The operator asks for one when a machine is to be added.
    let administrator = false
    try { administrator = ctx.home.loadRootKey(daemon.network) !== undefined } catch {}
    const invites = administrator ? 'mycelium network invite' : 'issued by the network administrator node'
    const ready = {
      peerId: daemon.host.peerId.toString(),
      networkId: daemon.network.networkId,
      networkName: daemon.network.name,
      addrs: daemon.addrs(),
      api: `http://127.0.0.1:${daemon.apiPort}`,
      invites
    }
    if (process.stdout.isTTY) {
      ctx.out([
        '',
        `  mycelium node ${ready.peerId}`,
        `  network   ${ready.networkName} (${ready.networkId})`,
        ...ready.addrs.map((a, i) => `  ${i === 0 ? 'listening' : '         '} ${a}`),
        `  admin API ${ready.api}  (token: ${ctx.home.path('api.token')})`,
        administrator ? '  to add a second machine, make an invite (single use, valid 1 h) with:\n\n    mycelium network invite\n\n  and run `mycelium join <invite>` there' : `  invites for this network are issued by its administrator node (${hostname()} is not it)`,
        ''
      ].join('\n'))
    }
    log.info(ready, 'node ready')

    let signalled = false
    const shutdown = (signal: string): void => {
      if (signalled) return
      signalled = true
      log.info({ signal }, 'signal received')
      void daemon.stop().then(() => process.exit(0), () => process.exit(1))
    }
    // A bug that leaves a promise rejected must cost one log line, not the node: any peer or
    // HTTP client able to reach such a path could otherwise stop it at will (and again after
    // each restart under systemd).
    process.on('unhandledRejection', (reason) => {
      log.error({ err: reason instanceof Error ? { message: reason.message, stack: reason.stack } : String(reason) }, 'unhandled rejection (the node keeps running)')
    })
    process.on('SIGINT', () => { shutdown('SIGINT') })
    process.on('SIGTERM', () => { shutdown('SIGTERM') })
    await new Promise(() => {})
  }
}

/** `--http-listen 127.0.0.1:7780`, `[::1]:0`, `0.0.0.0`, `off`; `--http-port N` alone means all interfaces. */
const LABEL_KEY = /^[A-Za-z0-9][A-Za-z0-9._/-]{0,31}$/
const MAX_LABELS = 16

/** `--label KEY=VALUE`, repeatable: keys of 1-32 letters, digits, '.', '_', '/', '-'; values up to 64 characters. */
export function labelsOf (raw: string[] | undefined): Record<string, string> {
  const labels: Record<string, string> = {}
  for (const item of raw ?? []) {
    const at = item.indexOf('=')
    const key = at === -1 ? item : item.slice(0, at)
    const value = at === -1 ? '' : item.slice(at + 1)
    if (at === -1 || !LABEL_KEY.test(key)) throw new UsageError(`--label takes KEY=VALUE with a key of 1-32 letters, digits, '.', '_', '/' or '-' (got "${item.slice(0, 60)}")`)
    if (value.length > 64 || /[\u0000-\u001f\u007f]/.test(value)) throw new UsageError(`--label ${key}: the value must be at most 64 characters, without control characters`)
    labels[key] = value
  }
  if (Object.keys(labels).length > MAX_LABELS) throw new UsageError(`at most ${MAX_LABELS} --label options`)
  return labels
}

export function httpListenOf (listen: string | undefined, port: string | undefined): 'off' | { host: string, port?: number } | undefined {
  if (listen === undefined) return port === undefined ? undefined : { host: '0.0.0.0', port: parsePort(port, 'http-port') }
  if (port !== undefined) throw new UsageError('give the port in --http-listen (HOST:PORT), not also --http-port')
  if (listen === 'off') return 'off'
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([0-9.]+|[a-zA-Z0-9.-]+))(?::(\d{1,5}))?$/.exec(listen)
  if (m === null) throw new UsageError(`--http-listen must be HOST, HOST:PORT, [IPv6]:PORT or off (got "${listen}")`)
  const host = m[1] ?? m[2]
  return m[3] === undefined ? { host } : { host, port: parsePort(m[3], 'http-listen') }
}
