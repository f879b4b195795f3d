// A hostile rhizomorph for the replay tests: it forwards stripe links like StripeForwarder but
// keeps a copy of every frame the primary sends, and can inject recorded frames, swap the order
// of the next two frames, or replay a whole recorded session on a fresh stream to the backup.
// It sees only what a real forwarder sees: length prefixes in the clear, sealed bodies.
import { Uint8ArrayList } from 'uint8arraylist'
import type { Libp2p } from 'libp2p'
import type { Stream } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { decodeForwardRequest, encodeForwardAnswer, STATUS_OK } from '../../ram-replication/transport/stripe-forwarder.ts'
import { readSingleFrame, writeSingleFrame } from '../../ram-replication/transport/forward-pipe.ts'
import type { ReplicationProtocols } from '../../ram-replication/index.ts'

export interface RecordedSession {
  /** Every frame the primary sent, length prefix included, in the order it was sent. */
  readonly frames: Uint8Array[]
  readonly toBackup: Stream
  closed: boolean
  /** Hold the next frame from the primary and forward it after the one that follows it. */
  swapNext: () => void
  /** Write a frame (length prefix included) to the backup as if the primary had sent it. */
  inject: (frame: Uint8Array) => void
}

export class RecordingForwarder {
  readonly sessions: RecordedSession[] = []
  private readonly node: Libp2p
  private readonly protocols: ReplicationProtocols

  constructor (node: Libp2p, protocols: ReplicationProtocols) {
    this.node = node
    this.protocols = protocols
  }

  async start (): Promise<void> {
    await this.node.handle(this.protocols.forward, (stream) => {
      this.forward(stream).catch(() => { stream.abort(new Error('recording forwarder failed')) })
    })
  }

  private async forward (fromPrimary: Stream): Promise<void> {
    const target = decodeForwardRequest(await readSingleFrame(fromPrimary, 1024, AbortSignal.timeout(5000)))
    const toBackup = await this.node.dialProtocol(peerIdFromString(target), this.protocols.stripe, { signal: AbortSignal.timeout(5000) })
    let held: Uint8Array | undefined
    let swapArmed = false
    const session: RecordedSession = {
      frames: [],
      toBackup,
      closed: false,
      swapNext: () => { swapArmed = true },
      inject: (frame) => { toBackup.send(frame) }
    }
    this.sessions.push(session)
    const buffer = new Uint8ArrayList()
    fromPrimary.addEventListener('message', (event) => {
      buffer.append(event.data)
      while (buffer.byteLength >= 4 && buffer.byteLength >= 4 + buffer.getUint32(0)) {
        const length = 4 + buffer.getUint32(0)
        const frame = buffer.subarray(0, length)
        buffer.consume(length)
        session.frames.push(frame)
        if (swapArmed && held == null) {
          held = frame
          continue
        }
        toBackup.send(frame)
        if (held != null) {
          toBackup.send(held)
          held = undefined
          swapArmed = false
        }
      }
    })
    toBackup.addEventListener('message', (event) => { fromPrimary.send(event.data) })
    const closeBoth = (): void => {
      session.closed = true
      if (fromPrimary.status === 'open') fromPrimary.abort(new Error('backup side closed'))
      if (toBackup.status === 'open') toBackup.abort(new Error('primary side closed'))
    }
    fromPrimary.addEventListener('remoteCloseWrite', () => { toBackup.close().catch(() => {}) })
    toBackup.addEventListener('remoteCloseWrite', () => { fromPrimary.close().catch(() => {}) })
    fromPrimary.addEventListener('close', closeBoth)
    toBackup.addEventListener('close', closeBoth)
    writeSingleFrame(fromPrimary, encodeForwardAnswer(STATUS_OK, ''))
  }

  /** Open a new stream to `backup` and write every frame of a recorded session to it at once. */
  async replay (recorded: RecordedSession, backup: string): Promise<{ stream: Stream, closed: () => boolean }> {
    const stream = await this.node.dialProtocol(peerIdFromString(backup), this.protocols.stripe, { signal: AbortSignal.timeout(5000) })
    let closed = false
    stream.addEventListener('close', () => { closed = true })
    for (const frame of recorded.frames) stream.send(frame)
    return { stream, closed: () => closed }
  }
}
