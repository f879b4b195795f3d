// The code a browser tab shows while it asks to join, and which the operator types into
// `mycelium network approve`. The node draws it at random (it is not derived from the tab's
// key, so nobody can make a request whose code looks like another's), from 32 symbols that
// cannot be misread (no I, O, 0, 1): 8 symbols are 40 bits, shown as two groups of four.
import { randomBytesOf } from '../../crypto/index.ts'

const ALPHABET = 'ABCDEFGHJKLMNPQRSTUVWXYZ23456789'
const LENGTH = 8

export function newApprovalCode (): string {
  // 256 is a multiple of 32: the low five bits of a random byte are uniform
  const symbols = [...randomBytesOf(LENGTH)].map(b => ALPHABET[b & 31]).join('')
  return `${symbols.slice(0, 4)}-${symbols.slice(4)}`
}

/** The code as the node shows it, from what an operator typed (any case, with or without the dash); undefined when it is no code. */
export function normalizeApprovalCode (typed: string): string | undefined {
  const symbols = typed.trim().toUpperCase().replace(/[\s-]/g, '')
  if (symbols.length !== LENGTH || [...symbols].some(c => !ALPHABET.includes(c))) return undefined
  return `${symbols.slice(0, 4)}-${symbols.slice(4)}`
}
