// The simulator's content: the spores' real epoch source and rules (EpochInput, epochViolation,
// nextCandidates) over in-memory latent entries. Members write their own signed `node` entries
// (role sclerotium, seq going up) and `health` entries, gossiped over the simulated network;
// a Byzantine proposer's bad bodies are built from a valid one by breaking one rule.
import { equalBytes } from '../../crypto/index.ts'
import { EpochInput, buildHeader, signEntry, decodeEntry, entryId, limitsWith, nextCandidates, decodeEpochEntries, type SignedEntry } from '../../spores/index.ts'
import type { SimWorld, BadContent, Prng } from '../../consensus/sim/index.ts'
import type { EpochBody, PreviousEpochFacts, CertifiedEpoch } from '../../consensus/index.ts'

const NETWORK = 'sim-network'
const MAX_SAFE_SEQ = Number.MAX_SAFE_INTEGER

function noStore (): never {
  throw new Error('the simulator stores certified epochs itself')
}

/**
 * `f` is the schedule's: exclusions take a member out of the candidates only while 3f+1
 * remain, as the daemon sets it (SporeLimits.minCandidates).
 */
export function sporesWorld (rng: Prng, plan: { f: number }): SimWorld {
  const latent = new Map<number, Map<string, SignedEntry>>()
  /** Every version of every entry seen (a stale-entry attack replays an old one). */
  const history = new Map<string, SignedEntry[]>()
  const seqs = new Map<number, number>()
  const sources = new Map<number, EpochInput>()
  const limits = limitsWith({ windowMs: 30_000, minCandidates: 3 * plan.f + 1 })
  const inputFor = (entries: () => AsyncIterable<SignedEntry>): EpochInput =>
    new EpochInput({ network: NETWORK, primary: { accept: noStore, latestEpoch: noStore }, latent: { entries }, limits })
  const checker = inputFor(async function * () {})

  const latentOf = (node: number): Map<string, SignedEntry> => {
    let m = latent.get(node)
    if (m === undefined) {
      m = new Map()
      latent.set(node, m)
    }
    return m
  }
  const keep = (node: number, e: SignedEntry): void => {
    const id = entryId(e.type, e.key)
    const m = latentOf(node)
    const held = m.get(id)
    if (held === undefined || e.seq > held.seq) m.set(id, e)
    const h = history.get(id) ?? []
    if (!h.some(x => x.seq === e.seq)) h.push(e)
    history.set(id, h)
  }
  const source = (node: number): EpochInput => {
    let s = sources.get(node)
    if (s === undefined) {
      const m = latentOf(node)
      s = inputFor(async function * () { yield * [...m.values()] })
      sources.set(node, s)
    }
    return s
  }
  const honestBody = async (node: number, previous: PreviousEpochFacts, issuedAt: number): Promise<EpochBody> => {
    const { entries, candidates } = await source(node).propose(previous, issuedAt)
    return { epoch: previous.epoch + 1, prev: previous.digest, issuedAt, entries, candidates }
  }
  const factsOf = (e: CertifiedEpoch): PreviousEpochFacts => {
    const h = checker.readHeader(e.headerBytes)
    return { epoch: h.epoch, digest: h.digest, issuedAt: h.issuedAt, candidates: h.candidates, entries: e.entries ?? [] }
  }

  return {
    genesis (candidates, issuedAt) {
      const built = buildHeader({ network: NETWORK, epoch: 0, prev: null, entries: [], committee: candidates, issuedAt })
      return { headerBytes: built.headerBytes, certificate: new Uint8Array(), entries: [] }
    },
    source,
    write (node, signer, now) {
      const seq = (seqs.get(node) ?? 0) + 1
      seqs.set(node, seq)
      const written: SignedEntry[] = [signEntry(signer, { type: 'node', key: signer.peerId, value: { addrs: [], role: 'sclerotium', hardware: { node: node } }, seq, issuedAt: now })]
      if (rng.chance(0.5)) written.push(signEntry(signer, { type: 'health', key: signer.peerId, value: { status: 'ok', load: rng.int(0, 400) / 100, memFreeMiB: rng.int(100, 4000), diskFreeGiB: 10 }, seq, issuedAt: now }))
      for (const e of written) keep(node, e)
      return written.map(e => e.bytes)
    },
    receive (node, bytes) {
      // Signatures are checked where it matters, when entries go into a proposal and when
      // members judge one; the simulated latent tier only keeps the newest version.
      keep(node, decodeEntry(bytes))
    },
    body: honestBody,
    async badBody (kind: BadContent, previous, self, now, victims) {
      const body = await honestBody([...sources.keys()][0] ?? 0, previous, now)
      const entries = decodeEpochEntries(body)
      const victim = victims[0]
      switch (kind) {
        case 'drop-entries':
          return { ...body, entries: [], candidates: nextCandidates({ ...previous, entries: decodeEpochEntries({ ...body, entries: previous.entries }) }, []) }
        case 'capture-candidates':
          return { ...body, candidates: [self.peerId] }
        case 'future-issuedAt':
          return await honestBody([...sources.keys()][0] ?? 0, previous, now + 3_600_000)
        case 'stale-entry': {
          const old = (history.get(entryId('node', victim)) ?? []).filter(e => entries.some(x => x.key === e.key && x.type === 'node' && x.seq > e.seq))[0]
          if (old !== undefined) {
            const rest = entries.filter(e => !(e.type === 'node' && e.key === victim))
            return { ...body, entries: [...rest, old].map(e => e.bytes) }
          }
        }
        // falls through: no older version of the victim's entry was seen
        case 'forge-entry': {
          const forged = signEntry(self, { type: 'node', key: victim, value: { addrs: [], role: 'hyphae', hardware: {} }, seq: MAX_SAFE_SEQ, issuedAt: now })
          const rest = entries.filter(e => !(e.type === 'node' && e.key === victim))
          return { ...body, entries: [...rest, forged].map(e => e.bytes) }
        }
      }
    },
    candidates: (epoch) => factsOf(epoch).candidates,
    exclude (node, signer, accused, evidence, now) {
      const id = entryId('exclusion', accused)
      if (latentOf(node).has(id)) return undefined
      const e = signEntry(signer, { type: 'exclusion', key: accused, value: { evidence }, seq: 1, issuedAt: now })
      keep(node, e)
      return e.bytes
    },
    check (epoch, previous) {
      const facts = factsOf(epoch)
      const body: EpochBody = { epoch: facts.epoch, prev: checker.readHeader(epoch.headerBytes).prev ?? new Uint8Array(), issuedAt: facts.issuedAt, entries: facts.entries, candidates: facts.candidates }
      const wrong = checker.violation(body, factsOf(previous))
      if (wrong !== undefined) return wrong
      return equalBytes(checker.build(body).digest, facts.digest) ? undefined : 'its entries do not build its header'
    }
  }
}
