// Membership-level verdicts as operations on the round engine: "node X is down" (each member
// asks its own probe) and role promotions that need agreement. The key names the verdict, the
// epoch whose committee decides it and the subject: "<op>:<epoch>:<subject>"; the input is
// derived from the key, so any candidate may open the round. The result is canonical CBOR
// true/false. Members judge from their own view, so a minority verdict is no fault (these
// operations are not objective: no dissent slashing; equivocation and the rest still are).
import { encodeCanonical, decodeCanonical, equalBytes } from '../crypto/index.ts'
import { signersOf, type Certificate } from './certificate.ts'
import type { EpochChain } from './epoch-chain.ts'
import type { Operation, RoundEngine } from './round-engine.ts'

export interface Verdict {
  op: string
  epoch: number
  subject: string
  verdict: boolean
  certificate: Uint8Array
  signers: string[]
}

export interface VerdictOperationOptions {
  name: string
  chain: EpochChain
  /** This member's own judgement of the subject (its probe, its policy). */
  judge: (subject: string, signal: AbortSignal) => Promise<boolean>
  onVerdict?: (verdict: Verdict) => void
}

const SUBJECT = /^[\x21-\x7e]{1,200}$/

export function verdictKey (name: string, epoch: number, subject: string): string {
  return `${name}:${epoch}:${subject}`
}

function parseKey (name: string, key: string): { epoch: number, subject: string } | undefined {
  if (!key.startsWith(`${name}:`)) return undefined
  const rest = key.slice(name.length + 1)
  const i = rest.indexOf(':')
  const epoch = Number(rest.slice(0, i))
  const subject = rest.slice(i + 1)
  if (i <= 0 || !Number.isSafeInteger(epoch) || epoch < 0 || !SUBJECT.test(subject)) return undefined
  return { epoch, subject }
}

export function verdictInput (epoch: number, subject: string): Uint8Array {
  return encodeCanonical({ epoch, subject })
}

export function verdictOperation (options: VerdictOperationOptions): Operation {
  return {
    name: options.name,
    objective: false,
    proposers: 'candidates',
    context: (key) => {
      const k = parseKey(options.name, key)
      const record = k === undefined ? undefined : options.chain.get(k.epoch)
      return record === undefined ? undefined : { candidates: record.candidates, seed: record.digest }
    },
    evaluate: async (key, input, signal) => {
      const k = parseKey(options.name, key)
      if (k === undefined || !equalBytes(input, verdictInput(k.epoch, k.subject))) throw new TypeError('verdict input does not match its key')
      return encodeCanonical(await options.judge(k.subject, signal))
    },
    certified: (cert: Certificate) => {
      const k = parseKey(options.name, cert.header.key)
      const verdict = decodeCanonical(cert.result)
      if (k === undefined || typeof verdict !== 'boolean') return
      options.onVerdict?.({ op: options.name, epoch: k.epoch, subject: k.subject, verdict, certificate: cert.bytes, signers: signersOf(cert) })
    }
  }
}

export const NODE_DOWN = 'node-down'
export const PROMOTION = 'role-promotion'

/** Asks the committee of the latest epoch for a verdict; resolves with the certified answer. */
export async function askVerdict (engine: RoundEngine, chain: EpochChain, name: string, subject: string, options: { signal?: AbortSignal, maxAttempts?: number } = {}): Promise<boolean> {
  const latest = chain.latest()
  if (latest === undefined) throw new TypeError('no epoch yet')
  const input = verdictInput(latest.epoch, subject)
  const cert = await engine.run(name, verdictKey(name, latest.epoch, subject), async () => input, options)
  return decodeCanonical(cert.result) === true
}

/** "Node X is down", from each member's own liveness probe. */
export function nodeDownOperation (options: { chain: EpochChain, isDown: (peerId: string, signal: AbortSignal) => Promise<boolean>, onVerdict?: (v: Verdict) => void }): Operation {
  return verdictOperation({ name: NODE_DOWN, chain: options.chain, judge: options.isDown, onVerdict: options.onVerdict })
}

/** Role promotions that need agreement; the subject is "<peerId>/<role>". */
export function promotionOperation (options: { chain: EpochChain, approve: (peerId: string, role: string, signal: AbortSignal) => Promise<boolean>, onVerdict?: (v: Verdict) => void }): Operation {
  return verdictOperation({
    name: PROMOTION,
    chain: options.chain,
    judge: async (subject, signal) => {
      const slash = subject.lastIndexOf('/')
      return slash > 0 && await options.approve(subject.slice(0, slash), subject.slice(slash + 1), signal)
    },
    onVerdict: options.onVerdict
  })
}
