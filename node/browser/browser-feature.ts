// Serves the hyphae web client from sclerotia and issues browser invites: a link to this node's
// page carrying a single-use invite whose certificate is short-lived (12 h by default), so a
// browser tab becomes a member with its own key, through the same handshake as any node.
import { readFileSync, existsSync } from 'node:fs'
import { join } from 'node:path'
import { ApiError } from '../api/index.ts'
import { createInvite } from '../network/index.ts'
import { topicPrefix } from '../../membership/index.ts'
import { DEFAULT_HTTP_PORT } from '../daemon/config.ts'
import type { DaemonContext, DaemonFeature } from '../daemon/feature.ts'
import { BROWSER_BUNDLE_DIR, BROWSER_BUNDLE_FILES, PAGE_CHAT_TOPIC, buildBrowserClient } from '../../browser-client/index.ts'
import { StaticSite, HttpPortInUseError, type SiteFile, type StaticSiteOptions } from './static-site.ts'
import { JoinRequests, UnknownJoinRequestError } from './join-requests.ts'
import { joinRequestEndpoints } from './join-request-endpoints.ts'

export const BROWSER_CERTIFICATE_TTL_MS = 12 * 3600_000
/** an approved join request's invite: the tab collects it within seconds */
const APPROVED_INVITE_TTL_MS = 15 * 60_000
const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8'
}

export interface BrowserInvite {
  url: string
  invite: string
  expiresAt: number
  certificateTtlMs: number
}

/** Multiaddrs a browser can dial: WebSockets, not relayed; reachable ones before loopback. */
export function browserAddrs (addrs: string[]): string[] {
  const ws = addrs.filter(a => /\/(ws|wss|tls\/ws)(\/|$)/.test(a) && !a.includes('/p2p-circuit') && a.includes('/p2p/'))
  const loopback = (a: string): boolean => a.startsWith('/ip4/127.') || a.startsWith('/ip6/::1/')
  return [...ws.filter(a => !loopback(a)), ...ws.filter(loopback)].slice(0, 8)
}

function hostOf (addr: string | undefined): string {
  const m = addr === undefined ? null : /^\/(ip4|ip6|dns4|dns6|dns)\/([^/]+)/.exec(addr)
  if (m === null) return '127.0.0.1'
  return m[1] === 'ip6' ? `[${m[2]}]` : m[2]
}

/** How often the feature checks the node's role, to open or close the HTTP server. */
const ROLE_CHECK_MS = 2_000

export function browserClientFeature (options: { gateway?: StaticSiteOptions['gateway'] } = {}): DaemonFeature {
  let site: StaticSite | undefined
  let listening = false
  let reconciling: Promise<void> = Promise.resolve()
  let roleTimer: NodeJS.Timeout | undefined
  let port = 0
  let files = new Map<string, SiteFile>()
  let context: DaemonContext | undefined
  const joinRequests = new JoinRequests()

  const httpUrl = (): string | undefined => {
    if (site === undefined || !listening || context === undefined) return undefined
    return `http://${hostOf(browserAddrs(context.host().getMultiaddrs().map(a => a.toString()))[0])}:${port}/`
  }

  const readBundle = (): boolean => {
    try {
      const loaded = new Map<string, SiteFile>()
      for (const name of BROWSER_BUNDLE_FILES) {
        loaded.set(`/${name}`, { body: readFileSync(join(BROWSER_BUNDLE_DIR, name)), contentType: CONTENT_TYPES[name.slice(name.lastIndexOf('.'))] })
      }
      files = loaded
      return true
    } catch {
      return false
    }
  }

  /** The bundle is read once; a missing one is built (a fresh clone) or read again on the next request. */
  const loadBundle = async (ctx: DaemonContext): Promise<void> => {
    if (!BROWSER_BUNDLE_FILES.every(f => existsSync(join(BROWSER_BUNDLE_DIR, f)))) {
      ctx.log.info({ dir: BROWSER_BUNDLE_DIR }, 'building the browser client (it was not built yet)')
      try {
        await buildBrowserClient()
      } catch (err) {
        ctx.log.warn({ err: (err as Error).message }, 'the browser client is not available: run `npm run build:browser`')
      }
    }
    readBundle()
  }

  const invite = (ctx: DaemonContext, options: { ttlMs: number, uses: number, certificateTtlMs: number, forPeerId?: string }): BrowserInvite => {
    const url = httpUrl()
    if (url === undefined) throw new ApiError(409, 'this node serves no browser client')
    const token = createInvite(ctx.home, { ttlMs: options.ttlMs, uses: options.uses, certificateTtlMs: options.certificateTtlMs, forPeerId: options.forPeerId, bootstrap: browserAddrs(ctx.host().getMultiaddrs().map(a => a.toString())) })
    return { url: `${url}#invite=${token}`, invite: token, expiresAt: Date.now() + options.ttlMs, certificateTtlMs: options.certificateTtlMs }
  }

  const open = async (ctx: DaemonContext): Promise<void> => {
    if (site === undefined || listening) return
    const listen = ctx.config.httpListen
    const { host, port: wanted } = listen === undefined || listen === 'off' ? { host: '0.0.0.0', port: undefined } : listen
    try {
      port = await site.listen(wanted ?? DEFAULT_HTTP_PORT, host)
    } catch (err) {
      // an explicit port must be honoured; the default one may be taken by another node on this machine
      if (wanted !== undefined || !(err instanceof HttpPortInUseError)) throw err
      port = await site.listen(0, host)
      ctx.log.warn({ port }, `HTTP port ${DEFAULT_HTTP_PORT} is in use: serving the web client on another port`)
    }
    listening = true
    // gossipsub forwards a topic only through subscribers: pages homed on different
    // sclerotia reach each other through them
    ctx.host().services.pubsub.subscribe(`${topicPrefix(ctx.network.networkId)}/app/${PAGE_CHAT_TOPIC}`)
    ctx.log.info({ url: httpUrl() }, 'serving the web client')
  }

  const reconcile = async (ctx: DaemonContext): Promise<void> => {
    if (site === undefined) return
    const serves = ctx.role() === 'sclerotium'
    try {
      if (serves && !listening) await open(ctx)
      if (!serves && listening) {
        await site.close()
        listening = false
        ctx.log.info({ role: ctx.role() }, 'no longer a sclerotium: the web client is no longer served')
      }
    } catch (err) {
      ctx.log.warn({ err: (err as Error).message }, 'could not open the web client\'s HTTP server; trying again')
    }
  }

  return {
    name: 'browser-client',
    async start (ctx) {
      context = ctx
      await loadBundle(ctx)
      site = new StaticSite({
        files: () => files,
        ...(options.gateway === undefined ? {} : { gateway: options.gateway }),
        // a tab asks to join; only the administrator node (it holds the root key) takes requests
        endpoints: joinRequestEndpoints({
          requests: joinRequests,
          refusal: () => ctx.home.loadRootKey(ctx.network) === undefined ? 'this node cannot admit members: ask the network administrator for an invite link' : undefined,
          onAsked: ({ peerId, code, from }) => { ctx.log.info({ peer: peerId, code, from }, 'a browser asks to join: approve with `mycelium network approve <code>`') }
        }),
        refusal: () => {
          const role = ctx.role()
          if (role !== 'sclerotium') return `this node is a ${role}: the web client is served by sclerotia`
          if (files.size === 0 && !readBundle()) return 'the web client is not built on this node: run `npm run build:browser`'
          return undefined
        }
      })
      if (ctx.config.httpListen === 'off') return
      // The public HTTP server is open only while this node is a sclerotium: a node that serves
      // no page offers strangers no socket at all. An explicit address must be honoured at
      // start (a port in use stops the start); later role changes open and close it quietly.
      if (ctx.role() === 'sclerotium') await open(ctx)
      roleTimer = setInterval(() => { reconciling = reconciling.then(async () => { await reconcile(ctx) }) }, ROLE_CHECK_MS)
      roleTimer.unref()
    },
    async stop () {
      clearInterval(roleTimer)
      await reconciling
      await site?.close()
      listening = false
      site = undefined
    },
    routes: (ctx) => ({
      'POST /browser/invites': ({ body }) => {
        const b = (body !== null && typeof body === 'object' ? body : {}) as Record<string, unknown>
        const ttlMs = b.ttlMs ?? 3_600_000
        const uses = b.uses ?? 1
        const certificateTtlMs = b.certificateTtlMs ?? BROWSER_CERTIFICATE_TTL_MS
        for (const [name, v] of [['ttlMs', ttlMs], ['uses', uses], ['certificateTtlMs', certificateTtlMs]] as const) {
          if (!Number.isSafeInteger(v) || (v as number) <= 0) throw new ApiError(400, `${name} must be a positive integer`)
        }
        return invite(ctx, { ttlMs: ttlMs as number, uses: uses as number, certificateTtlMs: certificateTtlMs as number })
      },
      'GET /browser/join-requests': () => joinRequests.pending(),
      'POST /browser/join-requests/approve': ({ body }) => {
        const b = (body !== null && typeof body === 'object' ? body : {}) as Record<string, unknown>
        const certificateTtlMs = b.certificateTtlMs ?? BROWSER_CERTIFICATE_TTL_MS
        if (!Number.isSafeInteger(certificateTtlMs) || (certificateTtlMs as number) <= 0) throw new ApiError(400, 'certificateTtlMs must be a positive integer')
        if (typeof b.request !== 'string') throw new ApiError(400, 'request must be the code the tab shows, or its full peer id')
        let request
        try {
          request = joinRequests.approve(b.request, (r) => invite(ctx, { ttlMs: APPROVED_INVITE_TTL_MS, uses: 1, certificateTtlMs: certificateTtlMs as number, forPeerId: r.peerId }).invite)
        } catch (err) {
          if (err instanceof UnknownJoinRequestError) throw new ApiError(404, `no browser join request "${b.request.slice(0, 80)}" is waiting (requests expire after 15 min): check the code on the tab`)
          throw err
        }
        ctx.log.info({ peer: request.peerId, code: request.code }, 'browser join request approved')
        return { peerId: request.peerId, code: request.code, certificateTtlMs }
      }
    }),
    status: () => ({ httpUrl: httpUrl() ?? null, browserJoinRequests: joinRequests.pending() })
  }
}
