// Browser-safe primitives shared by every folder: Ed25519, SHA-256, canonical CBOR,
// text encodings and peer-id/key conversion. On Node the "#ed25519" import resolves to
// node:crypto, in a browser bundle to @noble (package.json "imports").
export { sign, verify, getPublicKey, randomSecretKey, sha256, randomBytesOf } from '#ed25519'
export { encodeCanonical, decodeCanonical, equalBytes, splitSignedPair, NonCanonicalEncodingError, MAX_CBOR_DEPTH, type SignedPairFault } from './canonical-cbor.ts'
export { toHex, fromHex, toBase64Url, fromBase64Url, toBase32, InvalidEncodingError } from './encoding.ts'
export { peerIdOfPublicKey, publicKeyOfPeerId, InvalidPeerIdError, MAX_PEER_ID_LENGTH } from './peer.ts'
export { verifyRemembered } from './verified.ts'
export { constantTimeEqual } from './constant-time.ts'
