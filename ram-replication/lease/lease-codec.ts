// Lease messages on the wire: JSON, decoded and validated here, once. A malformed message is
// an error for its stream only; nothing of it reaches a voter or a holder.
import type { LeaseGroup, LeaseReply, LeaseRequest, LeaseRefusal } from './lease-terms.ts'
import { MAX_LEASE_MS, MAX_VOTERS, MIN_LEASE_MS } from './lease-terms.ts'

export class InvalidLeaseMessageError extends Error {
  readonly name = 'InvalidLeaseMessageError'
}

const REFUSALS: LeaseRefusal[] = ['not-a-voter', 'stale-group', 'stale-term', 'term-taken', 'lease-held', 'better-candidate', 'unknown-vm']
const ID = /^[A-Za-z0-9._-]{1,128}$/

function fail (message: string): never {
  throw new InvalidLeaseMessageError(message)
}

function object (value: unknown, what: string): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) fail(`${what} is not an object`)
  return value as Record<string, unknown>
}

function count (value: unknown, what: string, min = 0): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) fail(`${what} must be an integer ≥ ${min}`)
  return value
}

function id (value: unknown, what: string): string {
  if (typeof value !== 'string' || !ID.test(value)) fail(`${what} is not an id`)
  return value
}

function group (value: unknown): LeaseGroup {
  const g = object(value, 'group')
  const voters = g.voters
  if (!Array.isArray(voters) || voters.length === 0 || voters.length > MAX_VOTERS) fail(`group.voters must list 1..${MAX_VOTERS} peers`)
  const ids = voters.map((v, i) => id(v, `group.voters[${i}]`))
  if (new Set(ids).size !== ids.length) fail('group.voters lists a peer twice')
  return { generation: count(g.generation, 'group.generation', 1), voters: ids }
}

function parse (bytes: Uint8Array): Record<string, unknown> {
  if (bytes.byteLength > 8192) fail('lease message too large')
  try {
    return object(JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes)), 'lease message')
  } catch (error) {
    if (error instanceof InvalidLeaseMessageError) throw error
    fail(`lease message is not JSON: ${(error as Error).message}`)
  }
}

export function encodeLeaseMessage (message: LeaseRequest | LeaseReply): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(message))
}

export function decodeLeaseRequest (bytes: Uint8Array): LeaseRequest {
  const m = parse(bytes)
  const durationMs = count(m.durationMs, 'durationMs', MIN_LEASE_MS)
  if (durationMs > MAX_LEASE_MS) fail(`durationMs must be at most ${MAX_LEASE_MS}`)
  return {
    vmId: id(m.vmId, 'vmId'),
    term: count(m.term, 'term', 1),
    candidate: id(m.candidate, 'candidate'),
    group: group(m.group),
    epoch: count(m.epoch, 'epoch'),
    durationMs,
    ...(m.probe === true ? { probe: true } : {}),
    ...(m.release === true ? { release: true } : {}),
    ...(m.previous === undefined ? {} : { previous: group(m.previous) })
  }
}

export function decodeLeaseReply (bytes: Uint8Array): LeaseReply {
  const m = parse(bytes)
  if (typeof m.granted !== 'boolean') fail('granted must be a boolean')
  const reply: LeaseReply = { vmId: id(m.vmId, 'vmId'), granted: m.granted, term: count(m.term, 'term'), generation: count(m.generation, 'generation') }
  if (m.holder !== undefined) reply.holder = id(m.holder, 'holder')
  if (m.reason !== undefined) {
    // String() of a JSON object with its own "toString" key throws: name only what it is
    if (!REFUSALS.includes(m.reason as LeaseRefusal)) fail(`unknown refusal ${typeof m.reason === 'string' ? m.reason.slice(0, 40) : `of type ${typeof m.reason}`}`)
    reply.reason = m.reason as LeaseRefusal
  }
  if (m.waitMs !== undefined) reply.waitMs = count(m.waitMs, 'waitMs')
  return reply
}
