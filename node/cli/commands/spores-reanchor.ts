// `mycelium spores reanchor`: a node that was away longer than members keep certified headers
// (a week of epochs at the default interval) has no chain left to check its way to the newest
// epoch, and stays read-only for the primary spore. Its operator vouches for a newer certified
// epoch instead (from a fresh invite, or the epoch and digest `spores epochs --json` shows on a
// healthy node): the held chain is dropped and the node starts it again there, as a new node
// joining with that invite would. Done with the daemon stopped: the store is the daemon's.
import { Level } from 'level'
import { fromHex } from '../../../crypto/index.ts'
import { decodeInvite, type EpochAnchor } from '../../../membership/index.ts'
import { Spores, signerOf } from '../../../spores/index.ts'
import { HomeError } from '../../home/index.ts'
import { UsageError } from '../args.ts'
import type { Command } from '../command.ts'
import { printJson } from '../context.ts'

function anchorOf (flags: Record<string, unknown>, networkId: string): EpochAnchor {
  const invite = flags.invite as string | undefined
  const epoch = flags.epoch as string | undefined
  const digest = flags.digest as string | undefined
  if (invite !== undefined) {
    if (epoch !== undefined || digest !== undefined) throw new UsageError(`--invite takes the epoch from the invite: leave out --epoch and --digest`)
    const decoded = decodeInvite(invite)
    if (decoded.networkId !== networkId) throw new UsageError(`the invite is for network ${decoded.networkId}, this node is in ${networkId}`)
    if (decoded.epochAnchor === undefined) throw new UsageError('the invite carries no certified epoch: make it with the daemon of a member running (mycelium network invite, without --bootstrap)')
    return decoded.epochAnchor
  }
  if (epoch === undefined || digest === undefined) throw new UsageError('give --invite TOKEN, or --epoch N and --digest HEX')
  if (!/^\d{1,15}$/.test(epoch)) throw new UsageError(`--epoch must be an epoch number (got "${epoch}")`)
  if (!/^[0-9a-f]{64}$/i.test(digest)) throw new UsageError(`--digest must be the epoch's 64 hex digits from mycelium spores epochs --json (got "${digest.slice(0, 80)}")`)
  return { epoch: Number(epoch), digest: fromHex(digest.toLowerCase()) }
}

export const sporesReanchor: Command = {
  name: 'spores reanchor',
  usage: 'mycelium spores reanchor (--invite TOKEN | --epoch N --digest HEX)',
  summary: 'with the daemon stopped: drop the held primary chain and start it again at a certified epoch you vouch for (a node away longer than members keep headers)',
  flags: { invite: { type: 'string' }, epoch: { type: 'string' }, digest: { type: 'string' } },
  async run (ctx, { positional, flags }) {
    if (positional.length > 0) throw new UsageError('spores reanchor takes no arguments')
    const network = ctx.home.loadNetwork()
    if (network === undefined) throw new HomeError('this node is in no network: there is no primary spore to reanchor')
    const anchor = anchorOf(flags, network.networkId)
    const db = new Level<string, Uint8Array>(ctx.home.path('spores'), { keyEncoding: 'utf8', valueEncoding: 'view' })
    try {
      await db.open()
    } catch (err) {
      const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as { code?: string }).code
      if (cause === 'LEVEL_LOCKED') throw new HomeError('the daemon of this home is running: stop it first (mycelium stop), then reanchor')
      throw new HomeError(`cannot open this node's spores: ${(err as Error).message}`)
    }
    let held: number | null
    try {
      const spores = await Spores.open({ database: db, network: network.networkId, rootPublicKey: network.rootPublicKey, signer: signerOf(ctx.home.loadNodeKey().raw.slice(0, 32)) })
      held = spores.primary.latest()?.header.epoch ?? null
      if (held !== null && held >= anchor.epoch) throw new UsageError(`this node holds epoch ${held} already: an anchor must be newer`)
      await spores.primary.forgetChain()
      await spores.close()
    } finally {
      if (db.status === 'open') await db.close()
    }
    ctx.home.saveEpochAnchor(anchor)
    if (ctx.json) { printJson(ctx, { epoch: anchor.epoch, dropped: held }); return }
    ctx.out(`the primary spore starts again at epoch ${anchor.epoch} when the daemon next starts${held === null ? '' : ` (the chain held up to epoch ${held} was dropped)`}`)
  }
}
