// Layout of the spores in the node's one level database. Everything lives under the
// `spores` sublevel so the daemon can keep other data in the same database. Keys are UTF-8
// strings, values raw bytes (`view` encoding). Every write is one atomic batch across
// sublevels, so a record and the index it implies can never disagree after a crash.
//
//   spores!<tier>!e-<type>!<entry key>  → the entry's canonical [body, sig] bytes
//        tier ∈ primary | seed | latent; type ∈ ENTRY_TYPES; one record per (type, key)
//   spores!primary!meta!latest          → canonical bytes of the latest accepted epoch
//                                          (epoch.ts: [body, certificate])
//   spores!seed!quarantine!<peer id>    → canonical CBOR { peerId, addrs, entries: bytes[],
//                                          seedFrom, importedAt } of an unconfirmed seed node
//   spores!seed!meta!last-import        → canonical CBOR summary of the last import
import type { AbstractSublevel } from 'abstract-level'
import type { Level } from 'level'

export const TIERS = ['primary', 'seed', 'latent'] as const
export type TierName = typeof TIERS[number]

export type Bucket = AbstractSublevel<any, any, string, Uint8Array>
export type SporeLevel = Level<string, Uint8Array> | Level<any, any>

export const BUCKET_OPTIONS = { keyEncoding: 'utf8', valueEncoding: 'view' } as const

export function entryBucketName (type: string): string {
  return `e-${type}`
}

export const META_BUCKET = 'meta'
export const QUARANTINE_BUCKET = 'quarantine'
