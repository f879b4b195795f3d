// Signing and spreading an entry this node writes on an operator's request (a service record,
// an application's plan or endpoint): the next seq (a clock reading, above whatever either tier
// holds for the key), merged into the latent tier first, so what cannot be stored is never
// gossiped, then published.
import { signEntry, type Spores, type SporesNetwork, type EntryType, type SignedEntry, type Signer } from '../../spores/index.ts'

export class EntryNotStoredError extends Error {
  readonly name = 'EntryNotStoredError'
}

export async function publishEntry (spores: Spores, network: SporesNetwork, signer: Signer, fields: { type: EntryType, key: string, value: unknown, expiresAt?: number }): Promise<SignedEntry> {
  const now = Date.now()
  const held = Math.max(spores.tiers.latent.get(fields.type, fields.key)?.seq ?? 0, spores.tiers.primary.get(fields.type, fields.key)?.seq ?? 0)
  const entry = signEntry(signer, { type: fields.type, key: fields.key, value: fields.value as never, seq: Math.max(now, held + 1), issuedAt: now, ...(fields.expiresAt === undefined ? {} : { expiresAt: fields.expiresAt }) })
  const [outcome] = await spores.merge('latent', [entry])
  if (outcome.status !== 'merged') throw new EntryNotStoredError(`the ${fields.type} record was not stored: ${outcome.reason}`)
  await network.gossip.publish(entry)
  return entry
}
