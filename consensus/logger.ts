// The logging surface the engine needs; a pino logger satisfies it.
export interface ConsensusLogger {
  debug: (obj: object, msg?: string) => void
  info: (obj: object, msg?: string) => void
  warn: (obj: object, msg?: string) => void
  error: (obj: object, msg?: string) => void
}

export const quietLogger: ConsensusLogger = { debug () {}, info () {}, warn () {}, error () {} }
