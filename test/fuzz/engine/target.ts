// What a fuzz target is: valid seed messages made by the real encoders, the decoder under test,
// and what counts as a correct answer. The engine (run-target.ts) mutates the seeds and checks
// every decode against these rules; a target file only says how its format is built.
import type { Arbitrary } from 'fast-check'

/** How the engine mutates a layer's bytes beyond the generic byte mutations. */
export type Structure = 'cbor' | 'json' | 'binary' | 'text'

/**
 * One place where mutations are applied. Most targets have one layer: the message itself.
 * A signed format adds a layer whose seeds are the inner (signed) body and whose `wrap`
 * signs and frames the mutated body, so mutations reach the checks behind the signature.
 */
export interface Layer {
  name: string
  structure: Structure
  seeds: Uint8Array[]
  /** Builds the decoder's input from mutated layer bytes; may throw (then the bytes go in bare). */
  wrap?: (mutated: Uint8Array) => Uint8Array
}

export interface FuzzTarget {
  name: string
  /** What the target decodes, for the report. */
  what: string
  layers: Layer[]
  /** Decodes untrusted bytes; throws a named error or returns the documented result. */
  decode: (bytes: Uint8Array) => unknown
  /**
   * For an accepted input: the bytes its value encodes to again. With `canonical`, they must
   * equal the input (one value, one encoding); otherwise decoding them must give the same value.
   */
  reencode?: (decoded: unknown) => Uint8Array
  canonical?: boolean
  /** A result that is a rejection although no error was thrown (decoders that return undefined). */
  rejected?: (decoded: unknown) => boolean
  /** Extra generated inputs (e.g. grammar-built HTTP requests); `wellFormed` ones must be accepted. */
  extra?: Arbitrary<{ bytes: Uint8Array, wellFormed: boolean }>
  /** The most the transport ever delivers to this decoder (its frame limit); longer inputs are cut. */
  maxBytes?: number
}

/** An asynchronous target (HTTP servers): started once, every input sent over a socket. */
export interface AsyncFuzzTarget {
  name: string
  what: string
  layers: Layer[]
  extra?: Arbitrary<{ bytes: Uint8Array, wellFormed: boolean }>
  start: () => Promise<AsyncSession>
}

export interface AsyncSession {
  /** Sends one input; resolves with what was answered (or throws a FuzzFailure). */
  exec: (bytes: Uint8Array, wellFormed: boolean) => Promise<string>
  /** Throws a FuzzFailure if the server is no longer healthy. */
  alive: () => Promise<void>
  stop: () => Promise<void>
}

export type AnyTarget = FuzzTarget | AsyncFuzzTarget

export function isAsync (target: AnyTarget): target is AsyncFuzzTarget {
  return 'start' in target
}

/** A property broken by one input: a crash, a hang, a bad round trip. */
export class FuzzFailure extends Error {
  readonly name = 'FuzzFailure'
}

// Errors the engine raises on its own; a decoder that lets one of these escape did not
// validate its input (a property read on null, an array index out of range, bad JSON, …).
const GENERIC_ERRORS = new Set(['Error', 'TypeError', 'RangeError', 'SyntaxError', 'ReferenceError', 'EvalError', 'URIError', 'AggregateError', 'InternalError'])

/** The rejection reason an error gives, or undefined when it is not a named error of the project. */
export function rejectionOf (err: unknown): string | undefined {
  if (!(err instanceof Error)) return undefined
  if (GENERIC_ERRORS.has(err.name) || err.constructor === Error) return undefined
  return `${err.name}: ${normalise(err.message)}`
}

/** Collapses the variable parts of a message (numbers, hex, quoted text) so one reason is one entry. */
function normalise (message: string): string {
  return message.replace(/[0-9a-f]{8,}/gi, 'H').replace(/\d+/g, 'N').replace(/"[^"]*"|`[^`]*`/g, 'S').slice(0, 120)
}
