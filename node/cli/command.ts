import type { FlagSpec, ParsedArgs } from './args.ts'
import type { CommandContext } from './context.ts'

export interface Command {
  /** Words that select the command, e.g. "network invite". */
  name: string
  usage: string
  summary: string
  flags?: Record<string, FlagSpec>
  run: (ctx: CommandContext, args: ParsedArgs) => Promise<void>
}
