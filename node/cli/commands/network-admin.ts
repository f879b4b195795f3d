// Administering a network's identity: who was admitted, revoking a member, moving the root
// key to another machine, invalidating outstanding invites.
import { createInterface } from 'node:readline'
import { UsageError } from '../args.ts'
import type { Command } from '../command.ts'
import { api, printJson, type CommandContext } from '../context.ts'
import { HomeError, InviteBook, MemberBook, type NetworkInfo } from '../../home/index.ts'
import { DaemonNotRunningError } from '../../api/index.ts'
import { writeRootKeyFile, readRootKeyFile, MEMBER_CERTIFICATE_TTL_MS } from '../../network/index.ts'
import { issueCertificate, networkIdOf } from '../../../membership/index.ts'
import { getPublicKey, toBase64Url } from '../../../crypto/index.ts'
import { RevocationList, revokeOffline, revocationJson } from '../../revocation/index.ts'

function networkOf (ctx: CommandContext): NetworkInfo {
  const network = ctx.home.loadNetwork()
  if (network === undefined) throw new HomeError(`${ctx.home.dir} is in no network yet: run mycelium network create <name> or mycelium join <invite>`)
  return network
}

function requireAdministrator (ctx: CommandContext, network: NetworkInfo): Uint8Array {
  const secret = ctx.home.loadRootKey(network)
  if (secret === undefined) throw new HomeError(`this node does not hold the root key of network ${network.name}; run this on its administrator node (or import the key with mycelium network import-key FILE)`)
  return secret
}

/** The passphrase from MYCELIUM_PASSPHRASE, else asked on the terminal (not echoed). */
async function passphrase (confirm: boolean): Promise<string> {
  const fromEnv = process.env.MYCELIUM_PASSPHRASE
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv
  if (process.stdin.isTTY !== true) throw new UsageError('no passphrase: set MYCELIUM_PASSPHRASE or run this on a terminal')
  const ask = async (prompt: string): Promise<string> => {
    const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: true })
    // readline echoes what is typed through _writeToOutput: let the prompt through, then nothing
    let muted = false
    const out = rl as unknown as { _writeToOutput: (s: string) => void }
    out._writeToOutput = (s) => { if (!muted) process.stderr.write(s) }
    try {
      const answer = new Promise<string>(resolve => rl.question(prompt, resolve))
      muted = true
      return await answer
    } finally {
      rl.close()
      process.stderr.write('\n')
    }
  }
  const first = await ask('passphrase: ')
  if (confirm && first !== await ask('passphrase again: ')) throw new UsageError('the passphrases differ; nothing was written')
  return first
}

export const networkMembers: Command = {
  name: 'network members',
  usage: 'mycelium network members [--json]',
  summary: 'certificates this administrator issued: peer id, capabilities, issued, expires, revoked',
  async run (ctx, { positional }) {
    if (positional.length > 0) throw new UsageError('network members takes no arguments')
    const network = networkOf(ctx)
    requireAdministrator(ctx, network)
    const revoked = new RevocationList(ctx.home, network)
    const members = new MemberBook(ctx.home).list().map(m => ({
      peerId: m.peerId,
      capabilities: m.capabilities,
      issuedAt: new Date(m.issuedAt).toISOString(),
      expiresAt: new Date(m.expiresAt).toISOString(),
      revoked: revoked.has(m.peerId)
    }))
    if (ctx.json) { printJson(ctx, members); return }
    if (members.length === 0) { ctx.out('no certificate issued yet'); return }
    for (const m of members) ctx.out(`${m.peerId}  ${m.capabilities.join(',').padEnd(13)} issued ${m.issuedAt.slice(0, 10)}  expires ${m.expiresAt.slice(0, 10)}${m.revoked ? '  REVOKED' : ''}`)
  }
}

export const networkRevoke: Command = {
  name: 'network revoke',
  usage: 'mycelium network revoke <peerId> [--json]',
  summary: 'revoke a member: signed by the root key, spread to every node, which disconnect and refuse it',
  async run (ctx, { positional }) {
    if (positional.length !== 1) throw new UsageError('usage: mycelium network revoke <peerId>')
    const network = networkOf(ctx)
    requireAdministrator(ctx, network)
    let result: { peerId: string, revokedAt: number, until?: number }
    let spread = true
    try {
      result = await api(ctx).request('POST', '/network/revocations', { peerId: positional[0] })
    } catch (err) {
      if (!(err instanceof DaemonNotRunningError)) throw err
      result = revocationJson(revokeOffline(ctx.home, positional[0]))
      spread = false
    }
    if (ctx.json) { printJson(ctx, { ...result, spread }); return }
    ctx.out(`revoked ${result.peerId}`)
    // after `until` every certificate of that key has expired: nodes then forget the revocation
    ctx.err(result.until !== undefined ? `kept until ${new Date(result.until).toISOString().slice(0, 10)}, when every certificate of that key has expired` : 'kept for good (this administrator issued no certificate to that key that it knows of)')
    ctx.err(spread ? 'the revocation is being spread to every member; they disconnect it within seconds' : 'the daemon is not running: the revocation is stored and spreads when it starts')
  }
}

export const networkExportKey: Command = {
  name: 'network export-key',
  usage: 'mycelium network export-key FILE   (passphrase from $MYCELIUM_PASSPHRASE or asked)',
  summary: 'write the network root key to FILE, encrypted with a passphrase (scrypt + AES-256-GCM)',
  async run (ctx, { positional }) {
    if (positional.length !== 1) throw new UsageError('usage: mycelium network export-key FILE')
    const network = networkOf(ctx)
    const rootSecretKey = requireAdministrator(ctx, network)
    writeRootKeyFile(positional[0], { networkId: network.networkId, networkName: network.name, rootSecretKey }, await passphrase(true))
    if (ctx.json) printJson(ctx, { file: positional[0], networkId: network.networkId })
    else ctx.out(`root key of ${network.name} (${network.networkId}) written to ${positional[0]}; move it with care, it administers the network`)
  }
}

export const networkImportKey: Command = {
  name: 'network import-key',
  usage: 'mycelium network import-key FILE   (passphrase from $MYCELIUM_PASSPHRASE or asked)',
  summary: 'make this node an administrator of its network with a root key exported elsewhere',
  async run (ctx, { positional }) {
    if (positional.length !== 1) throw new UsageError('usage: mycelium network import-key FILE')
    const contents = readRootKeyFile(positional[0], await passphrase(false))
    const rootPublicKey = getPublicKey(contents.rootSecretKey)
    let network = ctx.home.loadNetwork()
    if (network !== undefined && network.networkId !== contents.networkId) throw new HomeError(`${positional[0]} holds the key of network ${contents.networkId}, but this home is a member of ${network.name} (${network.networkId}); nothing was imported`)
    if (network !== undefined && ctx.home.hasRootKey()) throw new HomeError(`this home already holds the root key of ${network.name}; nothing was imported`)
    if (network === undefined) {
      // a fresh home becomes a member by issuing its own certificate with the imported key
      network = { networkId: networkIdOf(rootPublicKey), name: contents.networkName, rootPublicKey }
      const nodeKey = await ctx.home.loadOrCreateNodeKey()
      ctx.home.createRootKey(contents.rootSecretKey)
      const own = issueCertificate({ networkId: network.networkId, issuerSecretKey: contents.rootSecretKey, issuerPublicKey: rootPublicKey, subject: nodeKey.publicKey.raw, capabilities: ['issuer', 'member'], issuedAt: Date.now(), ttlMs: MEMBER_CERTIFICATE_TTL_MS })
      ctx.home.saveChain([own])
      new MemberBook(ctx.home).record(own)
      ctx.home.saveNetwork(network)
    } else {
      ctx.home.createRootKey(contents.rootSecretKey)
    }
    if (ctx.json) printJson(ctx, { networkId: network.networkId, name: network.name, rootPublicKey: toBase64Url(rootPublicKey) })
    else ctx.out(`this node now administers ${network.name} (${network.networkId}); restart the daemon to issue invites`)
  }
}

export const networkRotateInvites: Command = {
  name: 'network rotate-invites',
  usage: 'mycelium network rotate-invites [--json]',
  summary: 'invalidate every outstanding invite of this administrator',
  async run (ctx, { positional }) {
    if (positional.length > 0) throw new UsageError('network rotate-invites takes no arguments')
    requireAdministrator(ctx, networkOf(ctx))
    const invalidated = new InviteBook(ctx.home).revokeAll()
    if (ctx.json) printJson(ctx, { invalidated })
    else ctx.out(`${invalidated} outstanding invite${invalidated === 1 ? '' : 's'} invalidated; new ones: mycelium network invite`)
  }
}
