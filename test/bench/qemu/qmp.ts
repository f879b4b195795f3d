// A minimal QMP client (QEMU's JSON machine protocol) over a unix socket: one command at a time,
// events skipped. Enough to drive a migration and read guest memory through the monitor.
import { createConnection } from 'node:net'
import type { Socket } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'

export class Qmp {
  private readonly socket: Socket
  private buffer = ''
  private readonly lines: string[] = []
  private wake?: () => void
  private closed = false

  private constructor (socket: Socket) {
    this.socket = socket
    socket.setEncoding('utf8')
    socket.on('data', (chunk: string) => {
      this.buffer += chunk
      let newline
      while ((newline = this.buffer.indexOf('\n')) >= 0) {
        this.lines.push(this.buffer.slice(0, newline))
        this.buffer = this.buffer.slice(newline + 1)
      }
      this.wake?.()
    })
    socket.on('close', () => { this.closed = true; this.wake?.() })
    socket.on('error', () => {})
  }

  /** Connect (retrying while QEMU starts) and leave capabilities negotiation mode. */
  static async connect (path: string, timeoutMs = 10_000): Promise<Qmp> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      try {
        const socket = await new Promise<Socket>((resolve, reject) => {
          const s = createConnection(path, () => resolve(s))
          s.once('error', reject)
        })
        const qmp = new Qmp(socket)
        await qmp.next() // greeting
        await qmp.execute('qmp_capabilities')
        return qmp
      } catch (error) {
        if (Date.now() > deadline) throw error
        await sleep(100)
      }
    }
  }

  async execute<T = unknown> (command: string, args?: Record<string, unknown>): Promise<T> {
    this.socket.write(JSON.stringify(args === undefined ? { execute: command } : { execute: command, arguments: args }) + '\n')
    for (;;) {
      const message = await this.next()
      if ('event' in message) continue
      if ('error' in message) throw new Error(`QMP ${command}: ${JSON.stringify(message.error)}`)
      return message.return as T
    }
  }

  /** A human monitor command (e.g. `xp`), its text output. */
  async hmp (command: string): Promise<string> {
    return await this.execute<string>('human-monitor-command', { 'command-line': command })
  }

  close (): void {
    this.socket.destroy()
  }

  private async next (): Promise<Record<string, unknown>> {
    for (;;) {
      const line = this.lines.shift()
      if (line !== undefined) return JSON.parse(line) as Record<string, unknown>
      if (this.closed) throw new Error('QMP connection closed')
      await new Promise<void>((resolve) => { this.wake = resolve })
      this.wake = undefined
    }
  }
}
