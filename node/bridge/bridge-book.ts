// The bridges a node runs, kept in its home (bridges.json) so they come back after a restart.
// Each bridge's own membership (node key, certificate, bootstrap) lives in bridges/<id>/.
import { rmSync } from 'node:fs'
import { Home, readJson, writeFileAtomic } from '../home/index.ts'
import { isNetworkId, BRIDGE_GRANT_PREFIX } from '../../membership/index.ts'
import { checkTopicName } from '../gossip/index.ts'

export interface BridgeRecord {
  id: string
  networkId: string
  networkName: string
  topics: string[]
  ratePerS: number
  createdAt: number
  /** bridge grants (mycb1.… tokens) of the administrators of either network; checked when the bridge loads them */
  grants?: string[]
}

export class BridgeBook {
  private readonly home: Home

  constructor (home: Home) {
    this.home = home
  }

  private file (): string {
    return this.home.path('bridges.json')
  }

  list (): BridgeRecord[] {
    return readJson(this.file(), (v) => {
      if (!Array.isArray(v)) throw new Error('not a list')
      return v.map((o: Record<string, unknown>) => {
        if (o === null || typeof o !== 'object' || typeof o.id !== 'string' || !/^[0-9a-f]{8}$/.test(o.id) || !isNetworkId(o.networkId) || typeof o.networkName !== 'string' || !Array.isArray(o.topics) || typeof o.ratePerS !== 'number' || !(o.ratePerS > 0) || !Number.isSafeInteger(o.createdAt)) throw new Error('bad bridge record')
        if (o.grants !== undefined && !(Array.isArray(o.grants) && o.grants.length <= 2 && o.grants.every(g => typeof g === 'string' && g.startsWith(BRIDGE_GRANT_PREFIX)))) throw new Error('bad bridge record')
        const record: BridgeRecord = { id: o.id, networkId: o.networkId, networkName: o.networkName, topics: o.topics.map(checkTopicName), ratePerS: o.ratePerS, createdAt: o.createdAt as number }
        return o.grants === undefined ? record : { ...record, grants: o.grants as string[] }
      })
    }) ?? []
  }

  /** The home of one bridge's membership in the other network. */
  bridgeHome (id: string): Home {
    return new Home(this.home.path(`bridges/${id}`))
  }

  add (record: BridgeRecord): void {
    this.home.ensure()
    writeFileAtomic(this.file(), JSON.stringify([...this.list().filter(r => r.id !== record.id), record], null, 2) + '\n')
  }

  /** Forgets a bridge and deletes its membership key. */
  remove (id: string): boolean {
    const records = this.list()
    const kept = records.filter(r => r.id !== id)
    if (kept.length !== records.length) writeFileAtomic(this.file(), JSON.stringify(kept, null, 2) + '\n')
    rmSync(this.bridgeHome(id).dir, { recursive: true, force: true })
    return kept.length !== records.length
  }
}
