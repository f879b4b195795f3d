// Where a VM's replicas and links go: backups and link forwarders are chosen among the
// connected members, rhizomorphs first (they exist to carry traffic), then sclerotia, then
// anyone. Each backup's links go through different forwarders; direct links fill the rest.
import type { BackupTarget } from '../../ram-replication/index.ts'

export interface PlacementPeer {
  peerId: string
  role: string
}

export class PlacementError extends Error {
  readonly name = 'PlacementError'
}

const ROLE_PREFERENCE = ['rhizomorph', 'sclerotium']

function preference (role: string): number {
  const rank = ROLE_PREFERENCE.indexOf(role)
  return rank === -1 ? ROLE_PREFERENCE.length : rank
}

/** Members ordered by how well they suit carrying replication traffic (stable by peer id). */
export function rankPeers (peers: PlacementPeer[]): PlacementPeer[] {
  return [...peers].sort((a, b) => preference(a.role) - preference(b.role) || (a.peerId < b.peerId ? -1 : a.peerId > b.peerId ? 1 : 0))
}

/**
 * `backups` replica hosts, each with `links` links. `pinned` backups (a migration target,
 * an explicit choice) come first. Forwarders are spread so that one backup's links never
 * share a forwarder, and a backup never forwards its own links.
 */
export function placeReplicas (peers: PlacementPeer[], options: { backups: number, links: number, pinned?: string[], unable?: Map<string, string> }): BackupTarget[] {
  const ranked = rankPeers(peers)
  const pinned = options.pinned ?? []
  // a member that cannot resume the guest (engine, memory) may forward links but never back up
  const unable = options.unable ?? new Map<string, string>()
  for (const peerId of pinned) {
    if (!ranked.some(peer => peer.peerId === peerId)) throw new PlacementError(`${peerId} is not a connected member`)
    const why = unable.get(peerId)
    if (why !== undefined) throw new PlacementError(`${peerId} cannot back this VM up: it ${why}`)
  }
  const able = ranked.map(peer => peer.peerId).filter(peerId => !unable.has(peerId))
  const backups = [...pinned, ...able.filter(peerId => !pinned.includes(peerId))].slice(0, options.backups)
  if (backups.length < options.backups) {
    const reasons = [...unable].map(([peerId, why]) => `${peerId.slice(-8)} ${why}`)
    throw new PlacementError(`${options.backups} backup(s) wanted but only ${able.length} of ${ranked.length} connected member(s) can host this VM${reasons.length > 0 ? `: ${reasons.join('; ')}` : ''}`)
  }
  const forwarders = ranked.map(peer => peer.peerId).filter(peerId => !backups.includes(peerId))
  let next = 0
  return backups.map(peerId => {
    const via: Array<string | undefined> = []
    for (let i = 0; i < Math.min(options.links, forwarders.length); i++) via.push(forwarders[(next + i) % forwarders.length])
    next += via.length
    while (via.length < options.links) via.push(undefined)
    return { peerId, via }
  })
}

/**
 * Witnesses of a VM's lease: voters that hold no replica, added so the group has an odd number
 * of voters and at least three (one primary and one backup alone could not fail over: neither
 * is a majority). Sclerotia first, as they are the always-on tier.
 */
export function chooseWitnesses (peers: PlacementPeer[], taken: string[]): string[] {
  const voters = 1 + taken.length
  const wanted = voters < 3 ? 3 - voters : voters % 2 === 0 ? 1 : 0
  const order = (role: string): number => role === 'sclerotium' ? 0 : role === 'rhizomorph' ? 1 : 2
  return [...peers]
    .filter(peer => !taken.includes(peer.peerId))
    .sort((a, b) => order(a.role) - order(b.role) || (a.peerId < b.peerId ? -1 : a.peerId > b.peerId ? 1 : 0))
    .slice(0, wanted)
    .map(peer => peer.peerId)
}
