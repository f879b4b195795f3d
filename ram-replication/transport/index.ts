export { replicationProtocols, silentLogger } from './protocols.ts'
export type { ReplicationProtocols, ReplicationNode, ReplicationLogger } from './protocols.ts'
export {
  decodeFrame, encodeStripe, encodeOrigin, encodeStripeReceipt, encodeEpochApplied, encodeHeartbeat, encodeResumed, encodeRelease, encodeLinkNonce,
  epochContentHash, WIRE_VERSION
} from './frames.ts'
export type {
  ReplicationFrame, StripeFrame, StripeHeader, PageEntry, PageEncoding, EncodedStripe,
  OriginFrame, LinkNonceFrame, StripeReceiptFrame, EpochAppliedFrame, HeartbeatFrame, ResumedFrame, ReleaseFrame
} from './frames.ts'
export { EpochEncoder, DEFAULT_STRIPE_BYTES } from './epoch-encoder.ts'
export type { EncodedEpoch, EpochEncoderOptions } from './epoch-encoder.ts'
export { encodePageDelta, applyPageDelta, validatePageDelta } from './page-delta.ts'
export { FrameChannel } from './frame-channel.ts'
export { deriveLinkKeys, FrameSealer, FrameOpener, SEAL_NONCE_BYTES, SEAL_SALT_BYTES } from './link-seal.ts'
export type { LinkKeys } from './link-seal.ts'
export { StripeLink } from './stripe-link.ts'
export type { LinkRoute } from './stripe-link.ts'
export { StripeForwarder, stripeForwarder } from './stripe-forwarder.ts'
export type { StripeForwarderOptions, StripeForwarderStats } from './stripe-forwarder.ts'
export {
  InvalidFrameError, FrameIntegrityError, FrameReplayError, FrameTooLargeError, InvalidPageDeltaError, ForwardRefusedError, LinkClosedError
} from './errors.ts'
