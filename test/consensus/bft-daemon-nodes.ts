// Sclerotia as real daemons (short epochs) for the BFT harness tests, and the reads the tests
// make through the CLI.
import { expect } from 'vitest'
import { Cluster, waitFor, type TestNode } from '../harness/index.ts'
import { fromHex } from '../../crypto/index.ts'
import { verifyEvidence } from '../../consensus/index.ts'

export const EPOCH_INTERVAL_S = '3'

export function bftArgs (f: number, conduct?: string): string[] {
  return ['--role', 'sclerotium', '--epoch-interval-s', EPOCH_INTERVAL_S, '--bft-f', String(f), ...(conduct === undefined ? [] : ['--bft-conduct', conduct])]
}

/** `count` daemons: joins one after the other (the founder limits parallel admissions from one address), starts in parallel. */
export async function startSclerotia (cluster: Cluster, count: number): Promise<TestNode[]> {
  const founder = cluster.newNode('n0')
  await founder.start()
  const members = Array.from({ length: count - 1 }, (_, i) => cluster.newNode(`n${i + 1}`))
  for (const node of members) await cluster.join(node, founder)
  await Promise.all(members.map(async n => { await n.start() }))
  const nodes = [founder, ...members]
  await cluster.waitForFullMesh(60_000)
  return nodes
}

export interface EpochView { epoch: number, digest: string, committee: string[], signers: string[], candidates: string[] }
export interface RoundView { op: string, key: string, attempt: number, committee: string[], commits: number, reveals: number, certified: boolean, failed: boolean }
export interface EpochsView { self: string, latest: number, readOnly: boolean, readOnlyReason?: string, epochs: EpochView[], rounds: RoundView[], nextCommittee: string[] }
export interface TrustView { self: string, threshold: number, excluded: string[], peers: Array<{ peerId: string, trust: number, excluded: boolean, slashes: Array<{ reason: string, evidenceId: string, key: string }> }> }

/** The node's epochs, or undefined while its primary epochs are not running yet. */
export async function epochsOf (node: TestNode, limit = 64): Promise<EpochsView | undefined> {
  try {
    return await node.api<EpochsView>(`/spores/epochs?limit=${limit}`)
  } catch {
    return undefined
  }
}

export async function trustOf (node: TestNode): Promise<TrustView> {
  return await node.api<TrustView>('/trust')
}

export async function waitForEpoch (nodes: TestNode[], epoch: number, timeoutMs: number): Promise<void> {
  // a poll is one small admin-API read per node; polled each second, a wait outlasted its epoch by half a second on average
  await waitFor(async () => {
    for (const n of nodes) if (((await epochsOf(n, 1))?.latest ?? -1) < epoch) return false
    return true
  }, { timeoutMs, intervalMs: 250, what: `epoch ${epoch} certified on ${nodes.map(n => n.name).join(', ')}` })
}

/** Fetches a slash's evidence through the CLI and checks it with nothing but its bytes. */
export async function checkEvidence (node: TestNode, evidenceId: string, accused: string, reason: string): Promise<void> {
  const { evidence } = await node.cliJson<{ id: string, evidence: string }>(['trust', 'evidence', evidenceId])
  const checked = verifyEvidence(fromHex(evidence))
  expect(checked.id).toBe(evidenceId)
  expect(checked.accused).toBe(accused)
  expect(checked.reason).toBe(reason)
}
