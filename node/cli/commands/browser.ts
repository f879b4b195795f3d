import { UsageError, parseDuration } from '../args.ts'
import type { Command } from '../command.ts'
import { api, printJson } from '../context.ts'

export const networkApprove: Command = {
  name: 'network approve',
  usage: 'mycelium network approve <code|peerId> [--cert-ttl 12h] [--json]',
  summary: 'admit a browser tab that asked to join (its code is shown by the tab and by mycelium status)',
  flags: { 'cert-ttl': { type: 'string' } },
  async run (ctx, { positional, flags }) {
    if (positional.length !== 1) throw new UsageError('usage: mycelium network approve <code|peerId>')
    const certificateTtlMs = parseDuration((flags['cert-ttl'] as string | undefined) ?? '12h')
    const result = await api(ctx).request<{ peerId: string, code: string }>('POST', '/browser/join-requests/approve', { request: positional[0], certificateTtlMs })
    if (ctx.json) { printJson(ctx, result); return }
    ctx.out(`approved ${result.peerId} (${result.code}): the tab joins within seconds, for ${Math.round(certificateTtlMs / 3_600_000 * 10) / 10} h`)
  }
}
