// The logging surface spores needs; a pino logger satisfies it.
export interface SporeLogger {
  debug: (obj: object, msg?: string) => void
  info: (obj: object, msg?: string) => void
  warn: (obj: object, msg?: string) => void
  error: (obj: object, msg?: string) => void
}

export const silentLogger: SporeLogger = { debug () {}, info () {}, warn () {}, error () {} }
