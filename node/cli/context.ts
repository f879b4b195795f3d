// What every command receives: the home directory, output mode and streams.
import { Home, defaultHomeDir } from '../home/index.ts'
import { ApiClient } from '../api/index.ts'

export interface CommandContext {
  home: Home
  json: boolean
  out: (text: string) => void
  err: (text: string) => void
}

export function contextFor (homeDir: string | undefined, json: boolean): CommandContext {
  return {
    home: new Home(homeDir ?? defaultHomeDir()),
    json,
    out: (text) => { process.stdout.write(text.endsWith('\n') ? text : text + '\n') },
    err: (text) => { process.stderr.write(text.endsWith('\n') ? text : text + '\n') }
  }
}

export function api (ctx: CommandContext): ApiClient {
  return ApiClient.forHome(ctx.home)
}

export function printJson (ctx: CommandContext, value: unknown): void {
  ctx.out(JSON.stringify(value, null, 2))
}
