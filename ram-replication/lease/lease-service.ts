// Leases over libp2p: every replication node answers lease requests for the groups that name
// it (`<prefix>/ram/lease/1.0.0`, one request and one reply per stream, directly between the
// two peers, so noise authenticates both ends) and asks other voters for its own leases.
import { lpStream } from '@libp2p/utils'
import { peerIdFromString } from '@libp2p/peer-id'
import type { Connection, Stream } from '@libp2p/interface'
import type { ReplicationLogger, ReplicationNode } from '../transport/protocols.ts'
import { silentLogger } from '../transport/protocols.ts'
import { decodeLeaseReply, decodeLeaseRequest, encodeLeaseMessage } from './lease-codec.ts'
import type { LeaseReply, LeaseRequest } from './lease-terms.ts'
import { LeaseVoter } from './lease-voter.ts'
import type { LeaseVoterOptions } from './lease-voter.ts'

const MAX_MESSAGE_BYTES = 8192
/** A voter that does not answer within this is counted as a refusal for this round. */
export const LEASE_ASK_TIMEOUT_MS = 250

export function leaseProtocol (prefix: string): string {
  return `${prefix.endsWith('/') ? prefix.slice(0, -1) : prefix}/ram/lease/1.0.0`
}

export interface LeaseServiceOptions extends Omit<LeaseVoterOptions, 'self'> {
  protocolPrefix: string
  /** the whole protocol id, when the leases are not a VM's (default `<prefix>/ram/lease/1.0.0`) */
  protocol?: string
  logger?: ReplicationLogger
  askTimeoutMs?: number
}

export class LeaseService {
  readonly voter: LeaseVoter
  private readonly node: ReplicationNode
  private readonly protocol: string
  private readonly logger: ReplicationLogger
  private readonly askTimeoutMs: number
  readonly self: string

  constructor (node: ReplicationNode, options: LeaseServiceOptions) {
    this.node = node
    this.self = node.peerId.toString()
    this.voter = new LeaseVoter({ ...options, self: this.self })
    this.protocol = options.protocol ?? leaseProtocol(options.protocolPrefix)
    this.logger = options.logger ?? silentLogger
    this.askTimeoutMs = options.askTimeoutMs ?? LEASE_ASK_TIMEOUT_MS
  }

  async start (): Promise<void> {
    await this.node.handle(this.protocol, (stream, connection) => { void this.answer(stream, connection) }, { maxInboundStreams: 256 })
  }

  async stop (): Promise<void> {
    await this.node.unhandle(this.protocol)
  }

  /** Ask one voter (this node's own voter directly). Undefined when it did not answer in time. */
  readonly ask = async (voter: string, request: LeaseRequest): Promise<LeaseReply | undefined> => {
    if (voter === this.self) return this.voter.handle(request)
    const signal = AbortSignal.timeout(this.askTimeoutMs)
    let stream: Stream | undefined
    try {
      stream = await this.node.dialProtocol(peerIdFromString(voter), this.protocol, { signal })
      const lp = lpStream(stream, { maxDataLength: MAX_MESSAGE_BYTES })
      await lp.write(encodeLeaseMessage(request), { signal })
      const reply = decodeLeaseReply((await lp.read({ signal })).subarray())
      await stream.close({ signal }).catch(() => {})
      return reply.vmId === request.vmId ? reply : undefined
    } catch (error) {
      stream?.abort(error as Error)
      return undefined
    }
  }

  private async answer (stream: Stream, connection: Connection): Promise<void> {
    const signal = AbortSignal.timeout(5000)
    try {
      const lp = lpStream(stream, { maxDataLength: MAX_MESSAGE_BYTES })
      const request = decodeLeaseRequest((await lp.read({ signal })).subarray())
      // Only the candidate itself may ask for a term: a third party cannot renew or claim it.
      if (request.candidate !== connection.remotePeer.toString()) throw new Error(`lease request for ${request.candidate} sent by ${connection.remotePeer.toString()}`)
      await lp.write(encodeLeaseMessage(this.voter.handle(request)), { signal })
      await stream.close({ signal }).catch(() => {})
    } catch (error) {
      this.logger.debug('lease request refused: %s', (error as Error).message)
      stream.abort(error as Error)
    }
  }
}
