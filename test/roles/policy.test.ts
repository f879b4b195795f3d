import { describe, it, expect } from 'vitest'
import { decideRole, balanceAdvice, sclerotiumTarget, measureHardware, loadHardwareProfile, profiledNetwork, unmeasuredNetwork, nextRoleState, HOLD, type BuiltInProfileName, type RoleDecision, type RoleState, type HardwareFacts, type BalanceMember } from '../../roles/index.ts'

const dataDir = '/tmp'

async function decisionFor (name: BuiltInProfileName, override: 'auto' | 'sclerotium' | 'rhizomorph' | 'hyphae' = 'auto'): Promise<{ decision: RoleDecision, facts: HardwareFacts }> {
  const profile = loadHardwareProfile(name)
  const facts = await measureHardware({ dataDir, profile })
  const network = profiledNetwork(unmeasuredNetwork(facts.measuredAt), profile)
  return { decision: decideRole(facts, network, { override }), facts }
}

describe('role policy over hardware profiles', () => {
  it('makes a wired Raspberry Pi 4 (4 GB, mains) a sclerotium candidate', async () => {
    const { decision } = await decisionFor('raspberry-pi-4')
    expect(decision.role).toBe('sclerotium')
    expect(decision.sclerotiumFit).toBe('preferred')
    expect(decision.score).toBeGreaterThanOrEqual(50)
    expect(decision.capabilities.vmBackups).toBe(false)
    expect(decision.reasons.join('\n')).toMatch(/no usable \/dev\/kvm/)
  })

  it('keeps a Pi Zero 2 W (512 MB, Wi-Fi) a hyphae and says it is the memory', async () => {
    const { decision } = await decisionFor('pi-zero-2w')
    expect(decision.role).toBe('hyphae')
    expect(decision.ceiling).toBe('hyphae')
    expect(decision.reasons.join('\n')).toMatch(/0\.5 GiB memory < 1\.0 GiB → hyphae/)
  })

  it('never gives a laptop on battery more than hyphae', async () => {
    const { decision } = await decisionFor('laptop-battery')
    expect(decision.role).toBe('hyphae')
    expect(decision.hardCeiling).toBe('hyphae')
    expect(decision.reasons.join('\n')).toMatch(/on battery → hyphae/)
  })

  it('makes a laptop on mains a rhizomorph that can host VM backups, promotable only when needed', async () => {
    const { decision } = await decisionFor('laptop-mains')
    expect(decision.role).toBe('rhizomorph')
    expect(decision.sclerotiumFit).toBe('possible')
    expect(decision.capabilities.vmBackups).toBe(true)
    expect(decision.reasons.join('\n')).toMatch(/KVM available → can host VM backups/)
    expect(decision.reasons.join('\n')).toMatch(/has a battery/)
  })

  it('makes a server with KVM the strongest sclerotium', async () => {
    const server = (await decisionFor('server-kvm')).decision
    const pi = (await decisionFor('raspberry-pi-4')).decision
    expect(server.role).toBe('sclerotium')
    expect(server.capabilities.vmBackups).toBe(true)
    expect(server.score).toBeGreaterThan(pi.score)
  })

  it('keeps an unreachable node off the sclerotium and rhizomorph roles, as a soft constraint', async () => {
    const { decision } = await decisionFor('unreachable')
    expect(decision.role).toBe('hyphae')
    expect(decision.reasons.join('\n')).toMatch(/not reachable from outside/)
    // reachability can be wrong for a while: it does not bypass hysteresis
    expect(decision.hardCeiling).toBe('sclerotium')
  })

  it('obeys an operator pin and marks a pinned sclerotium dedicated', async () => {
    const { decision } = await decisionFor('pi-zero-2w', 'sclerotium')
    expect(decision.role).toBe('sclerotium')
    expect(decision.dedicated).toBe(true)
    expect(decision.reasons[0]).toMatch(/operator pinned sclerotium/)
  })

  it('ranks strictly by facts: a busier machine scores lower', async () => {
    const profile = loadHardwareProfile('raspberry-pi-4')
    const idle = await measureHardware({ dataDir, profile })
    const busy = { ...idle, cpu: { ...idle.cpu, loadPercent: 95 } }
    const net = profiledNetwork(unmeasuredNetwork(0), profile)
    expect(decideRole(busy, net).score).toBeLessThan(decideRole(idle, net).score)
    expect(decideRole(busy, net).role).toBe('rhizomorph')
    // busy is a weaker candidate, not an unfit one
    expect(decideRole(busy, net).sclerotiumFit).toBe('possible')
    expect(decideRole(busy, net).reasons.join('\n')).toMatch(/load 95 % > 85 % → sclerotium only when the network needs one/)
  })

  it('keeps the backbone when every node is busy: seven loaded nodes still settle on three sclerotia, the least loaded first', async () => {
    const profile = loadHardwareProfile('raspberry-pi-4')
    const facts = await measureHardware({ dataDir, profile })
    const net = profiledNetwork(unmeasuredNetwork(0), profile)
    const loads = [99, 97, 100, 86, 96, 98, 94]
    let members: BalanceMember[] = loads.map((load, i) => {
      const d = decideRole({ ...facts, cpu: { ...facts.cpu, loadPercent: load } }, net)
      return { peerId: `p${i}`, role: d.role, dedicated: false, pinned: false, score: d.score, fit: d.sclerotiumFit, movable: true }
    })
    expect(members.every(m => m.role === 'rhizomorph' && m.fit === 'possible')).toBe(true)
    // every node runs the same balancing over the same view, round after round, until it settles
    for (let round = 0; round < 5; round++) {
      const advice = members.map(m => balanceAdvice(m.peerId, members).action)
      members = members.map((m, i) => advice[i] === 'promote' ? { ...m, role: 'sclerotium' as const } : advice[i] === 'demote' ? { ...m, role: 'rhizomorph' as const } : m)
    }
    const sclerotia = members.filter(m => m.role === 'sclerotium').map(m => m.peerId).sort()
    expect(sclerotia).toHaveLength(sclerotiumTarget(7))
    // the best scores win (load is part of the score): the least loaded is in, the busiest out
    const byScore = [...members].sort((a, b) => b.score - a.score || (a.peerId < b.peerId ? -1 : 1)).slice(0, 3).map(m => m.peerId).sort()
    expect(sclerotia).toEqual(byScore)
    expect(sclerotia).toContain('p3')
    expect(sclerotia).not.toContain('p2')
  })
})

describe('hysteresis', () => {
  const MIN = 60_000
  const interval = 5 * MIN

  async function start (name: BuiltInProfileName): Promise<{ decision: RoleDecision, state: RoleState, facts: HardwareFacts }> {
    const { decision, facts } = await decisionFor(name)
    const { state } = nextRoleState(undefined, decision, HOLD, 0, interval)
    return { decision, state, facts }
  }

  it('starts an automatic node below sclerotium and lets the network promote it at once', async () => {
    const { decision, state } = await start('server-kvm')
    expect(state.role).toBe('rhizomorph')
    const promoted = nextRoleState(state, decision, { action: 'promote', urgent: false, reason: 'needed' }, 1_000, interval)
    expect(promoted.changed).toBe(true)
    expect(promoted.state.role).toBe('sclerotium')
    expect(promoted.state.dedicated).toBe(false)
  })

  it('changes role at most once per interval for soft reasons', async () => {
    const { decision, state } = await start('server-kvm')
    const promoted = nextRoleState(state, decision, { action: 'promote', urgent: false, reason: 'needed' }, 1_000, interval).state
    const early = nextRoleState(promoted, decision, { action: 'demote', urgent: false, reason: 'surplus' }, 1_000 + 4 * MIN, interval)
    expect(early.changed).toBe(false)
    expect(early.state.role).toBe('sclerotium')
    expect(early.reasons[0]).toMatch(/hysteresis holds role changes/)
    const later = nextRoleState(promoted, decision, { action: 'demote', urgent: false, reason: 'surplus' }, 1_000 + interval, interval)
    expect(later.changed).toBe(true)
    expect(later.state.role).toBe('rhizomorph')
  })

  it('drops at once when the battery is unplugged', async () => {
    const { decision, state, facts } = await start('laptop-mains')
    const promoted = nextRoleState(state, decision, { action: 'promote', urgent: true, reason: 'needed' }, 1_000, interval).state
    expect(promoted.role).toBe('sclerotium')
    const unplugged = { ...facts, battery: { ...facts.battery, charging: false, onBattery: true } }
    const onBattery = decideRole(unplugged, profiledNetwork(unmeasuredNetwork(0), loadHardwareProfile('laptop-mains')))
    const next = nextRoleState(promoted, onBattery, HOLD, 2_000, interval)
    expect(next.changed).toBe(true)
    expect(next.state.role).toBe('hyphae')
    expect(next.reasons.join('\n')).toMatch(/hard constraint changed/)
  })

  it('waits out the interval when only reachability is lost', async () => {
    const { decision, state, facts } = await start('server-kvm')
    const promoted = nextRoleState(state, decision, { action: 'promote', urgent: false, reason: 'needed' }, 1_000, interval).state
    const unreachable = decideRole(facts, { reachable: false, rttMs: null, throughputMbps: null, peers: 2, measuredAt: 2_000 })
    expect(nextRoleState(promoted, unreachable, HOLD, 2_000, interval).state.role).toBe('sclerotium')
    expect(nextRoleState(promoted, unreachable, HOLD, 1_000 + interval, interval).state.role).toBe('hyphae')
  })

  it('lets an urgent promotion and an operator pin through', async () => {
    const { decision, state, facts } = await start('server-kvm')
    const demoted = nextRoleState(nextRoleState(state, decision, { action: 'promote', urgent: false, reason: '' }, 0, interval).state, decision, { action: 'demote', urgent: false, reason: '' }, interval, interval).state
    expect(demoted.role).toBe('rhizomorph')
    expect(nextRoleState(demoted, decision, { action: 'promote', urgent: false, reason: '' }, interval + 1_000, interval).state.role).toBe('rhizomorph')
    expect(nextRoleState(demoted, decision, { action: 'promote', urgent: true, reason: '' }, interval + 1_000, interval).state.role).toBe('sclerotium')
    const pinned = decideRole(facts, unmeasuredNetwork(0), { override: 'hyphae' })
    const next = nextRoleState(demoted, pinned, HOLD, interval + 1_000, interval)
    expect(next.state.role).toBe('hyphae')
    expect(next.reasons.join('\n')).toMatch(/operator set hyphae/)
  })
})

describe('role timing overrides', () => {
  it('derives defaults from the advertisement interval and validates overrides from the environment', async () => {
    const { roleTiming, roleTimingFromEnv, RoleTimingError, ROLE_TIMING_ENV } = await import('../../roles/index.ts')
    // a 5 s evaluation tick, a refresh every minute, an entry aged out after three refreshes
    expect(roleTiming()).toMatchObject({ advertiseIntervalMs: 5_000, refreshIntervalMs: 60_000, ttlMs: 180_000, hysteresisMs: 300_000 })
    const fast = roleTimingFromEnv({ [ROLE_TIMING_ENV]: '{"advertiseIntervalMs":1000,"hysteresisMs":20000}' })
    expect(roleTiming(fast)).toMatchObject({ advertiseIntervalMs: 1_000, refreshIntervalMs: 12_000, ttlMs: 36_000, settleMs: 2_000, hysteresisMs: 20_000 })
    // the ttl and the refresh stay consistent whichever is given
    expect(roleTiming({ ttlMs: 30_000 })).toMatchObject({ refreshIntervalMs: 10_000, ttlMs: 30_000 })
    expect(roleTiming({ refreshIntervalMs: 20_000 })).toMatchObject({ refreshIntervalMs: 20_000, ttlMs: 60_000 })
    expect(roleTimingFromEnv({})).toEqual({})
    expect(() => roleTimingFromEnv({ [ROLE_TIMING_ENV]: '{"advertiseIntervalMs":-1}' })).toThrow(RoleTimingError)
    expect(() => roleTimingFromEnv({ [ROLE_TIMING_ENV]: '{"warp":1}' })).toThrow(/unknown role timing/)
  })
})
