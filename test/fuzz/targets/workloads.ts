// Workloads: the signed application bundle (.spore file) as a node receives it. A second layer
// mutates the signed body and signs it again, so mutations reach the manifest, path and
// contents checks behind the signature (the publisher itself may be hostile).
import { decodeCanonical, encodeCanonical, sign, peerIdOfPublicKey } from '../../../crypto/index.ts'
import { signOperatorGrant, encodeOperatorGrant, decodeOperatorGrant, operatorGrantAdmits, MAX_OPERATOR_GRANT_BYTES, type OperatorGrant } from '../../../membership/index.ts'
import { decodeRequestHead, decodeAnswerHead, decodeFrame, encodeFrame, MAX_FRAME_BYTES, type GatewayFrame } from '../../../node/workloads/gateway-messages.ts'
import { decodeLogRequest } from '../../../node/workloads/log-exchange.ts'
import { decodeNodeFrame, decodeCreditFrame, encodeNodeFrame, encodeCreditFrame, MAX_FOLLOW_FRAME_BYTES, MAX_FOLLOWER_FRAME_BYTES, type NodeFrame, type CreditFrame } from '../../../node/workloads/log-follow-messages.ts'
import { packBundle, openBundle, type SignedBundle } from '../../../workloads/bundle/index.ts'
import type { FuzzTarget } from '../engine/target.ts'
import { keyOf, NOW, text } from './fixtures.ts'

const publisher = keyOf('bundle-publisher')

const bundles = [
  packBundle({
    manifest: {
      name: 'web',
      version: '1.2.0+build.7',
      kind: 'service',
      command: 'node',
      args: ['server.js', '--quiet'],
      binaries: { aarch64: 'bin/web-arm64' },
      env: { LOG_LEVEL: 'info' },
      resources: { cpuMillis: 250, memoryMb: 64 },
      health: { http: '/healthz' },
      placement: { roles: ['sclerotium'], arch: 'any', labels: { zone: 'garage' } }
    },
    files: [
      { path: 'server.js', bytes: text('require("http").createServer().listen(process.env.PORT)'), executable: false },
      { path: 'bin/web-arm64', bytes: new Uint8Array([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]), executable: true },
      { path: 'static/index.html', bytes: text('<h1>hi</h1>'), executable: false }
    ],
    secretKey: publisher.secretKey,
    grant: new Uint8Array(40).fill(9),
    signedAt: NOW
  }),
  packBundle({
    manifest: { name: 'resize', version: '3', kind: 'job', wasm: 'resize.wasm', resources: { cpuMillis: 1000, memoryMb: 256 }, placement: { roles: ['hyphae'], arch: 'any', labels: {} } },
    files: [{ path: 'resize.wasm', bytes: new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0]), executable: false }],
    secretKey: publisher.secretKey,
    signedAt: NOW
  })
]

/** The body of a packed bundle: the bytes its signature covers. */
function bodyOf (bundle: Uint8Array): Uint8Array {
  return (decodeCanonical(bundle) as [Uint8Array, Uint8Array])[0]
}

export const bundleTarget: FuzzTarget = {
  name: 'bundle',
  what: 'workloads/bundle openBundle (envelope, signature, manifest, paths, contents)',
  layers: [
    { name: 'bundle', structure: 'cbor', seeds: bundles },
    { name: 'body', structure: 'cbor', seeds: bundles.map(bodyOf), wrap: (body) => encodeCanonical([body, sign(publisher.secretKey, body)]) }
  ],
  decode: (bytes) => openBundle(bytes),
  // everything accepted was signed by the publisher, and packing it again must give its bytes
  reencode: (opened) => {
    const b = opened as SignedBundle
    return packBundle({ manifest: b.manifest, files: b.files, secretKey: publisher.secretKey, grant: b.grant, signedAt: b.signedAt })
  },
  canonical: true
}


const gatewayRequests = [
  { app: 'web', method: 'POST', path: '/echo?q=1', headers: [['content-type', 'text/plain'], ['x-trace', 'a']] },
  { app: 'a', method: 'GET', path: '/', headers: [] }
].map(r => encodeCanonical(r))

export const gatewayRequestTarget: FuzzTarget = {
  name: 'gateway-request',
  what: 'node/workloads/gateway-messages.ts decodeRequestHead (the head of a request another member carries to an instance here)',
  layers: [{ name: 'request', structure: 'cbor', seeds: gatewayRequests }],
  maxBytes: MAX_FRAME_BYTES,
  decode: (bytes) => decodeRequestHead(bytes),
  // hop-by-hop and malformed headers are dropped, not refused: decoding again gives the same request
  reencode: (req) => encodeCanonical(req)
}

export const gatewayAnswerTarget: FuzzTarget = {
  name: 'gateway-answer',
  what: 'node/workloads/gateway-messages.ts decodeAnswerHead (the head of what the member running an instance answers)',
  layers: [{ name: 'answer', structure: 'cbor', seeds: [encodeCanonical({ status: 200, headers: [['x-app', 'hello']] }), encodeCanonical({ status: 503, headers: [] })] }],
  maxBytes: MAX_FRAME_BYTES,
  decode: (bytes) => decodeAnswerHead(bytes),
  reencode: (answer) => encodeCanonical(answer)
}

export const gatewayFrameTarget: FuzzTarget = {
  name: 'gateway-frame',
  what: 'node/workloads/gateway-messages.ts decodeFrame (every frame of a gateway stream, either way)',
  layers: [{ name: 'frame', structure: 'binary', seeds: [encodeFrame({ kind: 'head', bytes: gatewayRequests[0] }), encodeFrame({ kind: 'data', bytes: text('spore') }), encodeFrame({ kind: 'end' }), encodeFrame({ kind: 'credit', bytes: 131072 })] }],
  maxBytes: MAX_FRAME_BYTES + 1,
  decode: (bytes) => decodeFrame(bytes),
  reencode: (frame) => encodeFrame(frame as GatewayFrame),
  canonical: true
}

const operatorRoot = keyOf('operator-root')
const operator = keyOf('operator-member')

export const operatorGrantTarget: FuzzTarget = {
  name: 'operator-grant',
  what: 'membership/operator-grant.ts decodeOperatorGrant, then operatorGrantAdmits as plans and bundles are checked',
  layers: [{ name: 'grant', structure: 'cbor', seeds: [encodeOperatorGrant(signOperatorGrant(operatorRoot.secretKey, { operator: peerIdOfPublicKey(operator.publicKey), issuedAt: NOW, ttlMs: 86_400_000 }))] }],
  maxBytes: MAX_OPERATOR_GRANT_BYTES,
  decode: (bytes) => {
    const grant = decodeOperatorGrant(bytes)
    operatorGrantAdmits(bytes, { rootPublicKey: operatorRoot.publicKey, operator: grant.operator, at: NOW })
    return grant
  },
  reencode: (grant) => encodeOperatorGrant(grant as OperatorGrant),
  canonical: true
}

export const logRequestTarget: FuzzTarget = {
  name: 'log-request',
  what: 'node/workloads/log-exchange.ts decodeLogRequest (another member asks for an instance\'s logs)',
  layers: [{ name: 'request', structure: 'cbor', seeds: [encodeCanonical({ app: 'web', stream: 'stderr', tail: 65536, grant: encodeOperatorGrant(signOperatorGrant(operatorRoot.secretKey, { operator: peerIdOfPublicKey(operator.publicKey), issuedAt: NOW, ttlMs: 60_000 })) })] }],
  maxBytes: 4096,
  decode: (bytes) => decodeLogRequest(bytes),
  reencode: (req) => encodeCanonical(req)
}

export const logFollowFrameTarget: FuzzTarget = {
  name: 'log-follow-frame',
  what: 'node/workloads/log-follow-messages.ts decodeNodeFrame (what the node running an instance pushes to a follower)',
  layers: [{ name: 'frame', structure: 'cbor', seeds: [{ following: true }, { refused: 'no grant' }, { missing: true }, { error: 'malformed' }, { text: 'line 1\nline 2\n' }, { beat: true }, { end: 'cut', why: 'web: fell behind' }].map(f => encodeNodeFrame(f as NodeFrame)) }],
  maxBytes: MAX_FOLLOW_FRAME_BYTES,
  decode: (bytes) => decodeNodeFrame(bytes),
  reencode: (frame) => encodeNodeFrame(frame as NodeFrame),
  canonical: true
}

export const logCreditFrameTarget: FuzzTarget = {
  name: 'log-credit-frame',
  what: 'node/workloads/log-follow-messages.ts decodeCreditFrame (a follower grants credit or answers a beat)',
  layers: [{ name: 'frame', structure: 'cbor', seeds: [encodeCreditFrame({ credit: 0 }), encodeCreditFrame({ credit: 131072 })] }],
  maxBytes: MAX_FOLLOWER_FRAME_BYTES,
  decode: (bytes) => decodeCreditFrame(bytes),
  reencode: (frame) => encodeCreditFrame(frame as CreditFrame),
  canonical: true
}

export const workloadTargets: FuzzTarget[] = [bundleTarget, gatewayRequestTarget, gatewayAnswerTarget, gatewayFrameTarget, operatorGrantTarget, logRequestTarget, logFollowFrameTarget, logCreditFrameTarget]
