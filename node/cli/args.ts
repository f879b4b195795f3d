// A small, strict argument parser: unknown flags are errors, not silently ignored.

export class UsageError extends Error {
  readonly name = 'UsageError'
}

export interface FlagSpec {
  /** string: takes a value; list: repeatable value; boolean: no value */
  type: 'string' | 'list' | 'boolean'
  /** a one-letter form (-f), for boolean flags */
  short?: string
}

export interface ParsedArgs {
  positional: string[]
  flags: Record<string, string | string[] | boolean | undefined>
}

export function parseArgs (argv: string[], spec: Record<string, FlagSpec>): ParsedArgs {
  const positional: string[] = []
  const flags: ParsedArgs['flags'] = {}
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]
    if (arg === '--') { positional.push(...argv.slice(i + 1)); break }
    if (/^-[A-Za-z]$/.test(arg)) {
      const long = Object.entries(spec).find(([, def]) => def.short === arg[1] && def.type === 'boolean')?.[0]
      if (long === undefined) throw new UsageError(`unknown option ${arg}`)
      flags[long] = true
      continue
    }
    if (!arg.startsWith('--') || arg === '--') { positional.push(arg); continue }
    const eq = arg.indexOf('=')
    const name = arg.slice(2, eq === -1 ? undefined : eq)
    const def = spec[name]
    if (def === undefined) throw new UsageError(`unknown option --${name}`)
    if (def.type === 'boolean') {
      if (eq !== -1) throw new UsageError(`--${name} takes no value`)
      flags[name] = true
      continue
    }
    let value: string
    if (eq !== -1) value = arg.slice(eq + 1)
    else {
      if (i + 1 >= argv.length) throw new UsageError(`--${name} needs a value`)
      value = argv[++i]
    }
    if (def.type === 'list') flags[name] = [...((flags[name] as string[] | undefined) ?? []), ...value.split(',').filter(v => v !== '')]
    else flags[name] = value
  }
  return { positional, flags }
}

export function parseDuration (text: string): number {
  const m = /^(\d+)(ms|s|m|h|d)$/.exec(text.trim())
  if (m === null) throw new UsageError(`"${text}" is not a duration (use e.g. 30s, 15m, 1h, 7d)`)
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 'ms' | 's' | 'm' | 'h' | 'd']
  const ms = Number(m[1]) * unit
  if (ms <= 0 || !Number.isSafeInteger(ms)) throw new UsageError(`"${text}" is not a usable duration`)
  return ms
}

export function parsePort (text: string, flag: string): number {
  const n = Number(text)
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new UsageError(`--${flag} must be a port number 0-65535 (0 = any free port)`)
  return n
}

export function parsePositiveInt (text: string, flag: string): number {
  const n = Number(text)
  if (!Number.isSafeInteger(n) || n <= 0) throw new UsageError(`--${flag} must be a positive whole number`)
  return n
}
