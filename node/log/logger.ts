// One line per event: JSON for machines, pretty when a person watches the terminal.
import { pino, type Logger } from 'pino'

export type { Logger }

export async function createLogger (options: { level?: string, pretty?: boolean } = {}): Promise<Logger> {
  const level = options.level ?? process.env.MYCELIUM_LOG_LEVEL ?? 'info'
  if (options.pretty ?? process.stdout.isTTY) {
    // loaded only for terminals: it is not needed by a service and costs memory
    const { default: pretty } = await import('pino-pretty')
    return pino({ level }, pretty({ colorize: true, translateTime: 'SYS:HH:MM:ss', ignore: 'pid,hostname' }))
  }
  return pino({ level, base: undefined })
}
