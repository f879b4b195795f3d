// Reading and writing a cgroup's control files. A failed write is an answer, not an error:
// it becomes the reason a limit is not enforced, and the instance starts anyway.
import { readFileSync, rmdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'

/** Writes one control file; says what went wrong, or nothing when it was written. */
export function writeControl (dir: string, file: string, value: string): string | undefined {
  try {
    writeFileSync(join(dir, file), value)
    return undefined
  } catch (err) {
    return `${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`
  }
}

/**
 * The processes in a cgroup (an exited one leaves it at once, before it is reaped). A listed
 * pid that no longer exists is skipped, so a tree that is not cgroupfs (a test's, a copy)
 * cannot hold up a stop.
 */
export function cgroupMembers (dir: string): number[] {
  let listed: number[]
  try {
    listed = readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(l => l.length > 0).map(Number).filter(Number.isInteger)
  } catch {
    return []
  }
  return listed.filter(exists)
}

function exists (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

export function signalMembers (dir: string, signal: NodeJS.Signals): void {
  for (const pid of cgroupMembers(dir)) {
    try { process.kill(pid, signal) } catch {}
  }
}

/** Kills what is left in the cgroup and removes it; says what could not be removed. */
export async function removeCgroup (dir: string): Promise<string | undefined> {
  signalMembers(dir, 'SIGKILL')
  const deadline = Date.now() + 2_000
  while (cgroupMembers(dir).length > 0 && Date.now() < deadline) await sleep(20)
  try {
    rmdirSync(dir)
    return undefined
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    return code === 'ENOENT' ? undefined : `${dir}: ${code ?? String(err)}`
  }
}
