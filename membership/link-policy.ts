// Which members a node keeps a direct link to, decided from its own role and the roles the
// others advertise. Pure: the same inputs give the same links on every call and every node.
//
// - Sclerotia keep a full mesh among themselves (the committee votes over it).
// - A rhizomorph keeps SCLEROTIA_PER_RHIZOMORPH sclerotia; a hyphae keeps ANCHORS_PER_HYPHAE.
//   Which ones is a rendezvous hash of the node's own id with each sclerotium's id: every
//   node ranks the sclerotia differently, so the load spreads evenly, and the ranking only
//   moves when the set of sclerotia changes, so links do not flap.
// - Anything else is reached through gossip (two hops: a sclerotium in between), the DHT,
//   relays, or a dial on demand when a feature needs a stream.
// - A network of at most FULL_MESH_MAX_MEMBERS members stays a full mesh: it keeps only the
//   minimum of 3 sclerotia, so a rhizomorph would link to all of them anyway, and the few
//   links more (at most 9) put every member one hop from every other; a home or lab network
//   of ten devices is meshed as soon as they start.
//
// A role is claimed by the member itself (a signed advertisement), so a member can claim to
// be a sclerotium it is not. Sclerotia in the certified committee of the primary spore
// (`vouched`) rank before claimed ones: a liar is only chosen when too few vouched sclerotia
// are known, and a node's links never all depend on unvouched claims while enough vouched
// sclerotia exist. A flood of claims cannot grow a node's links past MAX_SCLEROTIUM_MESH.
import { sha256 } from '../crypto/index.ts'

export const SCLEROTIA_PER_RHIZOMORPH = 3
export const ANCHORS_PER_HYPHAE = 2
/** Up to this many members (self included), every member links to every other. */
export const FULL_MESH_MAX_MEMBERS = 10
/** Links a node keeps when it knows no sclerotium yet (roles not settled): enough to stay connected. */
export const LINKS_WITHOUT_SCLEROTIA = 4
/** Committees hold at most 64 members; more claimed sclerotia than that are not all linked. */
export const MAX_SCLEROTIUM_MESH = 64

export type LinkKind = 'small-network' | 'committee' | 'sclerotium' | 'anchor' | 'neighbour'

export interface LinkCandidate {
  peerId: string
  /** the role the member advertises; undefined when not known yet */
  role?: string
}

export interface LinkPolicyInput {
  self: string
  /** this node's role; undefined before it is decided */
  role?: string
  /** the other members this node knows of (live ones), self excluded or not */
  members: LinkCandidate[]
  /** members this node is connected to now: a hyphae keeps the anchors it has */
  connected?: ReadonlySet<string>
  /** true for a sclerotium of the certified committee */
  vouched?: (peerId: string) => boolean
}

export interface LinkPlan {
  /** the members to keep a link to, and why */
  keep: Map<string, LinkKind>
  /** how many members the decision counted (self included) */
  members: number
}

/** Rendezvous weight of `other` for `self`: the first 8 bytes of sha256(self ‖ other). */
export function rendezvousWeight (self: string, other: string): bigint {
  const digest = sha256(new TextEncoder().encode(`${self}\n${other}`))
  let w = 0n
  for (let i = 0; i < 8; i++) w = (w << 8n) | BigInt(digest[i])
  return w
}

function byRendezvous (self: string, ids: string[]): string[] {
  const weights = new Map(ids.map(id => [id, rendezvousWeight(self, id)]))
  return [...ids].sort((a, b) => {
    const wa = weights.get(a) as bigint
    const wb = weights.get(b) as bigint
    return wa === wb ? (a < b ? -1 : 1) : wa > wb ? -1 : 1
  })
}

/** The `count` best of `ids`: vouched before unvouched, and each group by rendezvous weight. */
function pick (self: string, ids: string[], count: number, vouched: (peerId: string) => boolean, preferred?: ReadonlySet<string>): string[] {
  const groups: string[][] = [[], [], [], []]
  for (const id of ids) groups[(vouched(id) ? 0 : 2) + (preferred === undefined || preferred.has(id) ? 0 : 1)].push(id)
  return groups.flatMap(g => byRendezvous(self, g)).slice(0, count)
}

export function chooseLinks (input: LinkPolicyInput): LinkPlan {
  const roles = new Map<string, string | undefined>()
  for (const m of input.members) if (m.peerId !== input.self) roles.set(m.peerId, m.role ?? roles.get(m.peerId))
  const keep = new Map<string, LinkKind>()
  const members = roles.size + 1
  if (members <= FULL_MESH_MAX_MEMBERS) {
    for (const id of roles.keys()) keep.set(id, 'small-network')
    return { keep, members }
  }
  const vouched = input.vouched ?? (() => false)
  const sclerotia = [...roles].filter(([, role]) => role === 'sclerotium').map(([id]) => id)
  if (sclerotia.length === 0) {
    for (const id of pick(input.self, [...roles.keys()], LINKS_WITHOUT_SCLEROTIA, vouched)) keep.set(id, 'neighbour')
    return { keep, members }
  }
  let want: number
  if (input.role === 'sclerotium') {
    want = Math.min(sclerotia.length, MAX_SCLEROTIUM_MESH)
    for (const id of pick(input.self, sclerotia, want, vouched)) keep.set(id, 'committee')
  } else if (input.role === 'hyphae') {
    want = ANCHORS_PER_HYPHAE
    // the anchors it has are kept first: a hyphae re-anchors only when one is lost
    for (const id of pick(input.self, sclerotia, want, vouched, input.connected ?? new Set())) keep.set(id, 'anchor')
  } else {
    want = SCLEROTIA_PER_RHIZOMORPH
    for (const id of pick(input.self, sclerotia, want, vouched)) keep.set(id, 'sclerotium')
  }
  // too few sclerotia (one was just lost): other members fill in so no node hangs on one link
  if (keep.size < want) {
    const others = [...roles.keys()].filter(id => !keep.has(id) && roles.get(id) !== 'sclerotium')
    for (const id of pick(input.self, others, want - keep.size, vouched)) keep.set(id, 'neighbour')
  }
  return { keep, members }
}
