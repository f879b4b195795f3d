// Collection of instance directories: every start unpacks a bundle into
// <home>/apps/instances/NAME/<digest>/ beside NAME/logs/, and nothing else ever deletes them,
// so a node that ran many versions or applications would fill its disk. A directory goes once
// no instance here can use it and it has been left alone for the grace period:
// - the unpacked copy of an older bundle, beside the one the running instance of NAME uses;
// - all of NAME (copies and logs) when no instance of NAME runs here.
// Its age is counted from the newest of its own time, the times of what it holds and of the
// log files (the last output), and LocalInstances touches it when the instance stops, so the
// logs of a stopped instance stay readable for the grace period, also after a daemon crash (the
// last output then dates the stop). Names being started or stopped are never touched, nor the
// copy a running instance uses (a service that exits is restarted from it).
import { readdirSync, rmSync, statSync } from 'node:fs'
import { basename, join } from 'node:path'
import type { Logger } from '../log/index.ts'

export interface InstanceDirUse {
  /** names being started or stopped right now */
  busy: ReadonlySet<string>
  /** the unpacked copy each instance that runs here uses (kept until it stops), by name */
  running: ReadonlyMap<string, string>
}

export interface RemovedInstanceDir {
  name: string
  /** `copy`: an older bundle's unpacked copy; `instance`: all of NAME, logs included */
  what: 'copy' | 'instance'
  path: string
  removedAt: number
}

/** The newest modification time of `path` and what it holds, `depth` levels down. */
function newestTime (path: string, depth: number): number {
  let newest = statSync(path).mtimeMs
  if (depth === 0) return newest
  for (const entry of readdirSync(path, { withFileTypes: true })) {
    const child = join(path, entry.name)
    try {
      newest = Math.max(newest, entry.isDirectory() ? newestTime(child, depth - 1) : statSync(child).mtimeMs)
    } catch {
      // gone while we looked: it cannot make the directory younger
    }
  }
  return newest
}

export class InstanceDirCollector {
  private readonly o: { root: string, log: Logger, graceMs: number }
  /** directories removed since this node started, newest last (the last 20) */
  readonly recent: RemovedInstanceDir[] = []
  removedCount = 0

  constructor (options: { root: string, log: Logger, graceMs: number }) {
    this.o = options
  }

  /** One pass; returns what it removed. */
  collect (use: InstanceDirUse, now = Date.now()): RemovedInstanceDir[] {
    const removed: RemovedInstanceDir[] = []
    const stale = (path: string, depth: number): boolean => {
      try {
        return now - newestTime(path, depth) >= this.o.graceMs
      } catch {
        return false
      }
    }
    const remove = (name: string, what: RemovedInstanceDir['what'], path: string): void => {
      try {
        rmSync(path, { recursive: true, force: true })
      } catch (err) {
        this.o.log.warn({ app: name, path, err: (err as Error).message }, 'instance directory not removed')
        return
      }
      removed.push({ name, what, path, removedAt: now })
      this.o.log.info({ app: name, path }, what === 'copy' ? 'unpacked copy removed: the instance here runs another bundle' : 'instance directory removed: no instance of it runs here')
    }
    let names: string[]
    try {
      names = readdirSync(this.o.root, { withFileTypes: true }).filter(e => e.isDirectory()).map(e => e.name)
    } catch {
      return removed
    }
    for (const name of names) {
      if (use.busy.has(name)) continue
      const base = join(this.o.root, name)
      const inUse = use.running.get(name)
      if (inUse === undefined) {
        // the logs directory holds the output files: two levels cover them
        if (stale(base, 2)) remove(name, 'instance', base)
        continue
      }
      let children: string[]
      try {
        children = readdirSync(base, { withFileTypes: true }).filter(e => e.isDirectory() && e.name !== 'logs' && e.name !== basename(inUse)).map(e => e.name)
      } catch {
        continue
      }
      // a copy's own time is when it was unpacked or its instance stopped: what the program
      // wrote inside it does not count, it is not this node's to keep
      for (const child of children) if (stale(join(base, child), 0)) remove(name, 'copy', join(base, child))
    }
    this.removedCount += removed.length
    this.recent.push(...removed)
    this.recent.splice(0, Math.max(0, this.recent.length - 20))
    return removed
  }
}
