// This node's lease votes on VMs (ram-replication/lease), kept in `<home>/vm-leases.json` so a
// voter that restarts remembers which term it granted to whom (renewals are not written: the
// voter counts a remembered grant from its restart, which is the safe side). A file that does
// not decode is set aside as `vm-leases.json.broken`; the node then votes as if new, and says so.
import { existsSync, readFileSync, renameSync } from 'node:fs'
import { decodeLeaseRequest, type VoterRecord, type VoterStore } from '../../ram-replication/index.ts'
import { writeFileAtomic } from '../home/index.ts'

export const LEASE_VOTES_FILE = 'vm-leases.json'

function parseRecord (vmId: string, raw: unknown): VoterRecord {
  if (raw === null || typeof raw !== 'object') throw new TypeError(`${vmId}: not an object`)
  const r = raw as Record<string, unknown>
  // the record holds the fields of a request: validate it with the wire decoder
  const request = decodeLeaseRequest(new TextEncoder().encode(JSON.stringify({ vmId, term: r.term, candidate: r.holder, group: r.group, epoch: 0, durationMs: r.durationMs })))
  return { term: request.term, holder: request.candidate, group: request.group, durationMs: request.durationMs }
}

export function fileVoterStore (path: string, log?: { warn: (obj: object, msg: string) => void }): VoterStore {
  let records: Record<string, VoterRecord> = {}
  if (existsSync(path)) {
    try {
      const raw = JSON.parse(readFileSync(path, 'utf8')) as unknown
      if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new TypeError('not an object')
      for (const [vmId, record] of Object.entries(raw)) records[vmId] = parseRecord(vmId, record)
    } catch (err) {
      records = {}
      renameSync(path, `${path}.broken`)
      log?.warn({ file: path, err: (err as Error).message }, 'VM lease votes file does not decode; set aside, voting as a new node')
    }
  }
  return {
    load: () => ({ ...records }),
    save: (vmId, record) => {
      if (record === undefined) delete records[vmId]
      else records[vmId] = record
      writeFileAtomic(path, JSON.stringify(records) + '\n', 0o600)
    }
  }
}
