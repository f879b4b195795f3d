// RAM replication: every frame of the stripe protocol (a stripe's integrity hash recomputed
// after mutation, so the page table is reached), lease requests and replies (JSON), and a
// node's capability answer (JSON).
import { createHash } from 'node:crypto'
import {
  decodeFrame, encodeStripe, encodeOrigin, encodeStripeReceipt, encodeEpochApplied, encodeHeartbeat, encodeResumed, encodeRelease, encodeLinkNonce
} from '../../../ram-replication/transport/index.ts'
import { decodeLeaseRequest, decodeLeaseReply, encodeLeaseMessage } from '../../../ram-replication/lease/index.ts'
import { decodeCapability } from '../../../ram-replication/backup/index.ts'
import type { FuzzTarget } from '../engine/target.ts'
import { NOW, text } from './fixtures.ts'

function joined (chunks: Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(chunks))
}

const PAGE = 4096
const page = new Uint8Array(PAGE).map((_, i) => i * 7)
const stripes = [
  joined(encodeStripe({ vmId: 'vm-1', epoch: 3, stripeIndex: 0, stripeCount: 2, full: false, handover: false, memoryBytes: 16 * PAGE, pageSize: PAGE, guestCounter: 99, takenAt: NOW, vcpu: { regs: new Uint8Array(144).fill(1), sregs: new Uint8Array(312).fill(2) }, engine: 'interpreted' }, [
    { index: 0, encoding: 'raw', data: page }, { index: 3, encoding: 'zero', data: new Uint8Array(0) }, { index: 7, encoding: 'delta', data: new Uint8Array([1, 2, 3, 4, 5]) }
  ]).chunks),
  joined(encodeStripe({ vmId: 'vm-1', epoch: 3, stripeIndex: 1, stripeCount: 2, full: true, handover: true, memoryBytes: 16 * PAGE, pageSize: PAGE, guestCounter: 99, takenAt: NOW }, [{ index: 15, encoding: 'zero', data: new Uint8Array(0) }]).chunks)
]

/** A mutated stripe with its trailing SHA-256 made right again: the checks before it are reached. */
function rehashed (frame: Uint8Array): Uint8Array {
  if (frame.length < 34 || frame[1] !== 2) return frame
  const body = frame.subarray(0, frame.length - 32)
  return joined([body, createHash('sha256').update(body).digest()])
}

export const replicationFrameTarget: FuzzTarget = {
  name: 'ram-frame',
  what: 'ram-replication/transport/frames.ts decodeFrame (every frame kind)',
  layers: [
    {
      name: 'frame',
      structure: 'binary',
      seeds: [
        encodeOrigin({ peerId: '12D3KooWDa7Y4fJc1bFY7wBqJ1j1ZXAc9cPe962HTdYhBuWtvAxD', run: 5, salt: new Uint8Array(16).fill(9) }),
        encodeOrigin({ peerId: 'p', run: 0, salt: new Uint8Array(0) }),
        encodeLinkNonce(new Uint8Array(16).fill(4)),
        encodeStripeReceipt('vm-1', 3, 1),
        encodeEpochApplied({ vmId: 'vm-1', epoch: 3, guestCounter: 99, contentHash: new Uint8Array(32).fill(1), memoryHash: new Uint8Array(32).fill(2) }),
        encodeEpochApplied({ vmId: 'vm-1', epoch: 3, guestCounter: 99, contentHash: new Uint8Array(32).fill(1) }),
        encodeHeartbeat('vm-1', 3, NOW),
        encodeResumed('vm-1', 4, 100),
        encodeRelease('vm-1'),
        ...stripes
      ]
    },
    { name: 'stripe', structure: 'binary', seeds: stripes, wrap: rehashed }
  ],
  decode: decodeFrame
}

const group = { generation: 2, voters: ['12D3KooWA', '12D3KooWB', '12D3KooWC'] }
const requests = [
  { vmId: 'vm-1', term: 4, candidate: '12D3KooWB', group, epoch: 17, durationMs: 3000 },
  { vmId: 'vm.2_x', term: 1, candidate: '12D3KooWC', group, epoch: 0, durationMs: 100, probe: true as const, previous: { generation: 1, voters: ['12D3KooWA'] } },
  { vmId: 'vm-1', term: 5, candidate: '12D3KooWA', group, epoch: 18, durationMs: 60_000, release: true as const }
]
const replies = [
  { vmId: 'vm-1', granted: true, term: 4, generation: 2 },
  { vmId: 'vm-1', granted: false, term: 4, generation: 2, holder: '12D3KooWA', reason: 'lease-held' as const, waitMs: 1200 }
]

export const leaseTarget: FuzzTarget = {
  name: 'lease-message',
  what: 'ram-replication/lease/lease-codec.ts decodeLeaseRequest and decodeLeaseReply',
  layers: [{ name: 'message', structure: 'json', seeds: [...requests, ...replies].map(m => encodeLeaseMessage(m)) }],
  // requests and replies arrive on different streams: each decoder must refuse the other's message by name
  decode: (bytes) => [tryDecode(() => decodeLeaseRequest(bytes)), tryDecode(() => decodeLeaseReply(bytes))],
  rejected: (both) => (both as unknown[]).every(r => r instanceof Error)
}

function tryDecode (fn: () => unknown): unknown {
  try {
    return fn()
  } catch (err) {
    if (err instanceof Error && err.name === 'InvalidLeaseMessageError') return err
    throw err
  }
}

export const capabilityTarget: FuzzTarget = {
  name: 'replica-capability',
  what: 'ram-replication/backup/replica-capability.ts decodeCapability',
  layers: [{
    name: 'answer',
    structure: 'json',
    seeds: [
      text(JSON.stringify({ arch: 'x64', hostPageSize: 4096, engines: ['kvm', 'interpreted'], freeReplicaBytes: 8 * 2 ** 30 })),
      text(JSON.stringify({ arch: 'arm64', hostPageSize: 16384, engines: ['interpreted'], freeReplicaBytes: 0 }))
    ]
  }],
  decode: decodeCapability,
  // the asking side reads the answer with lpStream({ maxDataLength: 1024 })
  maxBytes: 1024,
  reencode: (c) => text(JSON.stringify(c))
}

export const ramTargets = [replicationFrameTarget, leaseTarget, capabilityTarget]
