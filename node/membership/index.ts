// Network identity and membership. Browser-safe on purpose: the web client presents and
// checks the same certificates through the same handshake.
export { networkIdOf, isNetworkId, protocolPrefix, topicPrefix } from './network-id.ts'
export { issueCertificate, encodeCertificate, decodeCertificate, encodeChain, verifyChain, MAX_CHAIN_LENGTH } from './certificate.ts'
export type { MembershipCertificate, CertificateChain, Capability, ChainCheck } from './certificate.ts'
export { encodeInvite, decodeInvite, admissionProof, checkAdmissionProof, INVITE_PREFIX } from './invite.ts'
export type { Invite } from './invite.ts'
export { membershipEncrypter, MEMBERSHIP_TIMEOUT_MS, ANY_NETWORK_MEMBERSHIP_PROTOCOL } from './handshake.ts'
export type { MembershipPolicy, MembershipCredentials, AdmissionRequest } from './handshake.ts'
export { MembershipError, InvalidCertificateError, InvalidInviteError, AdmissionRefusedError, MembershipRefusedError } from './errors.ts'
