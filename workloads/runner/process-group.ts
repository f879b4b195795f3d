// An instance's process group: the service runs in a session of its own, so its pid is also
// the id of the group everything it forks joins. Stopping signals the group; the group is gone
// when none of its processes is alive. A zombie does not count: an orphan's parent may be an
// init that never reaps it (as on this project's test machine).
import { readdirSync, readFileSync } from 'node:fs'

export function signalGroup (pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal)
  } catch {}
}

export function groupAlive (pgid: number): boolean {
  if (process.platform !== 'linux') {
    try {
      process.kill(-pgid, 0)
      return true
    } catch {
      return false
    }
  }
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    const stat = procStat(entry)
    if (stat !== undefined && stat.pgrp === pgid && stat.state !== 'Z' && stat.state !== 'X') return true
  }
  return false
}

/** /proc/<pid>/stat: `pid (comm) state ppid pgrp …`; comm may hold spaces and parentheses. */
function procStat (pid: string): { state: string, pgrp: number } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const [state, , pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return { state, pgrp: Number(pgrp) }
  } catch {
    return undefined
  }
}
