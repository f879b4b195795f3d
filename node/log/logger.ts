// One line per event: JSON for machines, pretty when a person watches the terminal.
import { pino, type Logger } from 'pino'

export type { Logger }

/**
 * Fields that must never reach a log (the journal under systemd is readable by more than the
 * operator): no code logs them; a slip is censored rather than written.
 */
const SECRET_FIELDS = ['invite', 'token', 'secret', 'apiToken', 'rootKey', 'privateKey', 'password']
const REDACT = { paths: [...SECRET_FIELDS, ...SECRET_FIELDS.map(f => `*.${f}`)], censor: '[secret]' }

export async function createLogger (options: { level?: string, pretty?: boolean } = {}): Promise<Logger> {
  const level = options.level ?? process.env.MYCELIUM_LOG_LEVEL ?? 'info'
  if (options.pretty ?? process.stdout.isTTY) {
    // loaded only for terminals: it is not needed by a service and costs memory
    const { default: pretty } = await import('pino-pretty')
    return pino({ level, redact: REDACT }, pretty({ colorize: true, translateTime: 'SYS:HH:MM:ss', ignore: 'pid,hostname' }))
  }
  return pino({ level, base: undefined, redact: REDACT })
}
