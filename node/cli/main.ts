// `mycelium`: one binary, one clear line on stderr and a non-zero exit for every failure.
import pkg from '../../package.json' with { type: 'json' }
import { parseArgs, UsageError, type FlagSpec } from './args.ts'
import { contextFor } from './context.ts'
import { commands } from './commands/index.ts'
import type { Command } from './command.ts'

const GLOBAL_FLAGS: Record<string, FlagSpec> = { home: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean' } }

function version (): string {
  return pkg.version
}

function help (): string {
  const width = Math.max(...commands.map(c => c.name.length))
  return [
    `mycelium ${version()} — a tiered edge/IoT mesh node`,
    '',
    'usage: mycelium <command> [options]   (global: --home DIR, --json, --help, --version)',
    '',
    ...commands.map(c => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    'home directory: --home DIR, else $MYCELIUM_HOME, else ~/.mycelium'
  ].join('\n')
}

function findCommand (words: string[]): { command: Command, rest: string[] } | undefined {
  let best: { command: Command, rest: string[] } | undefined
  for (const command of commands) {
    const parts = command.name.split(' ')
    if (parts.every((p, i) => words[i] === p) && (best === undefined || parts.length > best.command.name.split(' ').length)) {
      best = { command, rest: words.slice(parts.length) }
    }
  }
  return best
}

export async function main (argv: string[]): Promise<number> {
  if (argv[0] === '--version' || argv[0] === 'version') { process.stdout.write(version() + '\n'); return 0 }
  if (argv.length === 0 || argv[0] === '--help' || argv[0] === 'help') { process.stdout.write(help() + '\n'); return argv.length === 0 ? 2 : 0 }
  // global options may come before the command words: mycelium --home DIR status
  let i = 0
  const before: string[] = []
  while (i < argv.length && argv[i].startsWith('--')) {
    const takesValue = argv[i] === '--home'
    before.push(...argv.slice(i, i + (takesValue ? 2 : 1)))
    i += takesValue ? 2 : 1
  }
  const words: string[] = []
  for (let j = i; j < argv.length && words.length < 2 && !argv[j].startsWith('-'); j++) words.push(argv[j])
  const found = findCommand(words)
  if (found === undefined) {
    const group = commands.filter(c => c.name.startsWith(`${words[0] ?? ''} `))
    const hint = group.length > 0 ? ` (try: ${group.map(c => c.name).join(', ')})` : ' (see mycelium --help)'
    process.stderr.write(`mycelium: unknown command "${words.join(' ')}"${hint}\n`)
    return 2
  }
  const { command } = found
  const rest = [...before, ...argv.slice(i + command.name.split(' ').length)]
  let ctxJson = false
  try {
    const args = parseArgs(rest, { ...GLOBAL_FLAGS, ...command.flags })
    if (args.flags.help === true) { process.stdout.write(`usage: ${command.usage}\n${command.summary}\n`); return 0 }
    ctxJson = args.flags.json === true
    const ctx = contextFor(args.flags.home as string | undefined, ctxJson)
    await command.run(ctx, args)
    return 0
  } catch (err) {
    const e = err as Error
    const message = e.message.split('\n').join('\n  ')
    process.stderr.write(`mycelium: ${message}${err instanceof UsageError ? `\nusage: ${command.usage}` : ''}\n`)
    if (process.env.MYCELIUM_DEBUG === '1') process.stderr.write(`${e.stack ?? ''}\n`)
    return err instanceof UsageError ? 2 : 1
  }
}
