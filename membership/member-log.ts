// The log membership writes to: the daemon passes its pino logger, a browser page a quiet one.
export interface MemberLog {
  debug: (fields: Record<string, unknown>, message: string) => void
  info: (fields: Record<string, unknown>, message: string) => void
  warn: (fields: Record<string, unknown>, message: string) => void
}

const quiet = (): void => {}
export const quietLog: MemberLog = { debug: quiet, info: quiet, warn: quiet }
