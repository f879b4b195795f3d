// `mycelium spores epochs` and `mycelium trust …`: the certified primary epochs (committee and
// certificate signers of each), and the trust ledger (slashes with their evidence, exclusions).
import { writeFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { UsageError } from '../args.ts'
import type { Command } from '../command.ts'
import { api, printJson } from '../context.ts'
import { fromHex } from '../../../crypto/index.ts'
import type { EpochsReport, TrustReportWithExclusions } from '../../../consensus/index.ts'

type Epochs = EpochsReport & { self: string, f: number, epochIntervalS: number }
type Trust = TrustReportWithExclusions & { self: string }

function short (peerId: string, self: string): string {
  return `…${peerId.slice(-8)}${peerId === self ? ' (this node)' : ''}`
}

export const sporesEpochs: Command = {
  name: 'spores epochs',
  usage: 'mycelium spores epochs [--limit N] [--json]',
  summary: 'recent certified primary epochs: number, digest, committee and certificate signers',
  flags: { limit: { type: 'string' } },
  async run (ctx, { positional, flags }) {
    if (positional.length > 0) throw new UsageError('usage: mycelium spores epochs [--limit N] [--json]')
    const limit = (flags.limit as string | undefined) ?? '16'
    if (!/^[1-9][0-9]{0,3}$/.test(limit)) throw new UsageError(`--limit must be a number from 1 to 1024 (got "${limit}")`)
    const r = await api(ctx).request<Epochs>('GET', `/spores/epochs?limit=${limit}`)
    if (ctx.json) { printJson(ctx, r); return }
    const lines = [`latest epoch ${r.latest < 0 ? 'none' : r.latest}   f=${r.f}   interval ${r.epochIntervalS} s   ${r.readOnly ? `READ-ONLY: ${r.readOnlyReason ?? 'cannot reach a quorum of the last committee'}` : 'writable'}`]
    for (const e of r.epochs) {
      lines.push(`epoch ${String(e.epoch).padEnd(6)} ${e.digest.slice(0, 16)}…  ${new Date(e.issuedAt).toISOString()}  signed by ${e.signers.length}/${e.committee.length}`)
      if (e.committee.length > 0) lines.push(`  committee ${e.committee.map(p => `${short(p, r.self)}${e.signers.includes(p) ? '' : ' (no signature)'}`).join(', ')}`)
    }
    ctx.out(lines.join('\n'))
  }
}

export const trust: Command = {
  name: 'trust',
  usage: 'mycelium trust [--json]',
  summary: 'trust per committee peer, slashes with their evidence ids, exclusions',
  flags: {},
  async run (ctx, { positional }) {
    if (positional.length > 0) throw new UsageError('usage: mycelium trust [--json]')
    const r = await api(ctx).request<Trust>('GET', '/trust')
    if (ctx.json) { printJson(ctx, r); return }
    if (r.peers.length === 0) { ctx.out(`no peer has taken part in a round yet (exclusion below trust ${r.threshold})`); return }
    const lines = [`peer                      trust  state     slashes   (excluded below ${r.threshold})`]
    for (const p of r.peers) {
      lines.push(`${short(p.peerId, r.self).padEnd(25)} ${p.trust.toFixed(2).padStart(5)}  ${(p.excluded ? 'EXCLUDED' : 'eligible').padEnd(9)} ${p.slashes.length}`)
      for (const s of p.slashes) lines.push(`  ${s.reason.padEnd(10)} ${s.key.padEnd(12)} ${new Date(s.at).toISOString()}  evidence ${s.evidenceId}`)
    }
    ctx.out(lines.join('\n'))
  }
}

export const trustEvidence: Command = {
  name: 'trust evidence',
  usage: 'mycelium trust evidence ID [--out FILE] [--json]',
  summary: 'the signed messages behind a slash (canonical CBOR), to check offline',
  flags: { out: { type: 'string' } },
  async run (ctx, { positional, flags }) {
    if (positional.length !== 1) throw new UsageError('usage: mycelium trust evidence ID [--out FILE] [--json]')
    const r = await api(ctx).request<{ id: string, evidence: string }>('GET', `/trust/evidence?id=${encodeURIComponent(positional[0])}`)
    const out = flags.out as string | undefined
    if (out !== undefined) {
      writeFileSync(resolve(out), fromHex(r.evidence))
      if (ctx.json) printJson(ctx, { id: r.id, file: resolve(out) }); else ctx.out(`evidence ${r.id} written to ${resolve(out)}`)
      return
    }
    if (ctx.json) { printJson(ctx, r); return }
    ctx.out(r.evidence)
  }
}
