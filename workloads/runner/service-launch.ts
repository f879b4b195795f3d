// How a service's process is started: which file its command names, the environment it gets
// (a minimal one, never the daemon's own, so no secret of the node leaks into an app), and the
// exit code recorded when it could not be started at all.
import { isAbsolute, join, resolve } from 'node:path'
import { executableFile, locateExecutable, type LocatedCommand } from './executable-file.ts'
import type { ServiceSpec } from './service-spec.ts'

const FALLBACK_PATH = '/usr/local/bin:/usr/bin:/bin'

/** A bare name is a file of the bundle when it has one, else a program on PATH (spawn looks it up). */
export function serviceCommand (spec: ServiceSpec): string {
  if (isAbsolute(spec.command)) return spec.command
  if (spec.command.includes('/')) return resolve(spec.dir, spec.command)
  const inBundle = join(spec.dir, spec.command)
  return executableFile(inBundle) ? inBundle : spec.command
}

/** The file to exec, looked up on the service's own PATH, as spawn would look it up. */
export function locateServiceCommand (spec: ServiceSpec): LocatedCommand {
  return locateExecutable(serviceCommand(spec), { PATH: serviceEnvironment(spec).PATH, dir: spec.dir })
}

export function serviceEnvironment (spec: ServiceSpec): Record<string, string> {
  return {
    PATH: process.env.PATH ?? FALLBACK_PATH,
    HOME: spec.dir,
    LANG: 'C.UTF-8',
    ...spec.env,
    PORT: String(spec.port)
  }
}

/** The shell's codes: 127 when the command is not found, 126 when it cannot be run. */
export function unstartableExitCode (errno: string | undefined): number {
  return errno === 'ENOENT' ? 127 : 126
}
