// The scale model of roles and spores (test/sim/scale), small and bounded: the real role
// balancing settles on √N sclerotia, an entry reaches every live node, a crashed sclerotium
// is replaced, and a seed replays the same run.
import { describe, it, expect } from 'vitest'
import { runScaleModel } from './scale/index.ts'

describe('scale model of roles and spores', () => {
  it('settles on √N sclerotia, spreads an entry to every live node and replaces a crashed sclerotium', async () => {
    const r = await runScaleModel({ nodes: 40, seconds: 100, seed: 7 })
    expect(r.simulatedSeconds).toBe(100)
    // target max(3, round(√N)); churn moves N by a node or two and balancing lags a confirmation period
    expect(Math.abs(r.sclerotia.final - r.sclerotia.target)).toBeLessThanOrEqual(1)
    expect(r.sclerotia.firstAtTargetS).not.toBeNull()
    expect(r.convergence.probes).toBeGreaterThan(0)
    expect(r.convergence.complete).toBe(r.convergence.probes)
    expect(r.replacements.kills).toBeGreaterThan(0)
    expect(r.replacements.replaced).toBe(r.replacements.kills)
    // a replacement waits for the dead node's advertisement to expire (ttl 15 s) and a confirmation (6 s)
    expect(r.replacements.maxMs).toBeLessThan(40_000)
  }, 60_000)

  it('replays the same figures from the same seed', async () => {
    const a = await runScaleModel({ nodes: 20, seconds: 90, seed: 3 })
    const b = await runScaleModel({ nodes: 20, seconds: 90, seed: 3 })
    const strip = (r: typeof a): unknown => ({ ...r, wallSeconds: 0, heapMiB: 0 })
    expect(strip(b)).toEqual(strip(a))
  }, 60_000)
})
