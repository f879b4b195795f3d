// What a node runs for a service on its own architecture. Placement comes first: a manifest
// that lists architectures says where it was built to run, even when a command would start.
import type { AppManifest, Arch } from './manifest.ts'

/**
 * The program and arguments for `arch`: `binaries[arch]` when the bundle has one, else
 * `command`; undefined when the bundle has nothing for `arch` or placement.arch leaves it out.
 * A command is a file of the unpacked bundle when one of that path exists, else a program on
 * PATH. A job's module is `manifest.wasm` and has no native entry point.
 */
export function entrypointFor (manifest: AppManifest, arch: Arch): { command: string, args: string[] } | undefined {
  if (manifest.placement.arch !== 'any' && !manifest.placement.arch.includes(arch)) return undefined
  const command = manifest.binaries?.[arch] ?? manifest.command
  if (command === undefined) return undefined
  return { command, args: [...(manifest.args ?? [])] }
}
