// An instance's cgroups on a cgroup v1 host: one per controller hierarchy, at
// `<hierarchy>/<the daemon's own cgroup>/mycelium/<instanceId>`. Nesting under the daemon's
// own cgroup keeps an instance inside whatever the host holds the daemon to (its service
// unit, its container), so a host limit on the daemon bounds its instances as well.
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { DEFAULT_CGROUP_ROOT, CONTROLLERS, type Controller, type EnforcedLimits } from './enforced-limits.ts'
import { cgroupMembers, removeCgroup, signalMembers, writeControl } from './cgroup-files.ts'
import { CPU_PERIOD_US, PIDS_MAX, cpuQuotaUs, makeCgroupDir, memoryBytes, withheld, type CgroupResources, type InstanceCgroup } from './instance-cgroup.ts'

export class CgroupV1 implements InstanceCgroup {
  readonly #dirs = new Map<Controller, string>()
  #limits: EnforcedLimits

  constructor (cgroupRoot: string | undefined, instanceId: string, resources: CgroupResources, detected: EnforcedLimits) {
    const root = cgroupRoot ?? DEFAULT_CGROUP_ROOT
    this.#limits = detected
    for (const c of CONTROLLERS) {
      if (!detected[c]) continue
      const dir = join(ownCgroupDir(root, c), 'mycelium', instanceId)
      const problem = makeCgroupDir(dir)
      if (problem !== undefined) {
        this.#limits = withheld(this.#limits, [c], problem)
        continue
      }
      // processes left by an earlier run of this instance, whose daemon died without stopping it
      signalMembers(dir, 'SIGKILL')
      this.#dirs.set(c, dir)
    }
    this.#limitMemory(memoryBytes(resources))
    this.#limit('cpu', [['cpu.cfs_period_us', String(CPU_PERIOD_US)], ['cpu.cfs_quota_us', String(cpuQuotaUs(resources))]])
    this.#limit('pids', [['pids.max', String(PIDS_MAX)]])
  }

  get limits (): EnforcedLimits {
    return this.#limits
  }

  admit (pid: number): void {
    for (const [c, dir] of this.#dirs) {
      const problem = writeControl(dir, 'cgroup.procs', String(pid))
      if (problem !== undefined && this.#limits[c]) this.#limits = withheld(this.#limits, [c], `the process was not admitted to ${dir} (${problem})`)
    }
  }

  signal (signal: NodeJS.Signals): void {
    for (const dir of this.#dirs.values()) signalMembers(dir, signal)
  }

  members (): number[] {
    return [...new Set([...this.#dirs.values()].flatMap(cgroupMembers))]
  }

  async remove (): Promise<string | undefined> {
    const problems = await Promise.all([...this.#dirs.values()].map(removeCgroup))
    const left = problems.filter(p => p !== undefined)
    return left.length > 0 ? left.join('; ') : undefined
  }

  #limitMemory (bytes: number): void {
    const dir = this.#dirs.get('memory')
    if (dir === undefined || !this.#limits.memory) return
    const value = String(bytes)
    const first = writeControl(dir, 'memory.limit_in_bytes', value)
    // swap would let the instance past its limit; without swap accounting the file is absent
    if (existsSync(join(dir, 'memory.memsw.limit_in_bytes'))) writeControl(dir, 'memory.memsw.limit_in_bytes', value)
    // a lower memory+swap limit left by an earlier run refuses the first write until it is raised
    const problem = first === undefined ? undefined : writeControl(dir, 'memory.limit_in_bytes', value)
    if (problem !== undefined) this.#limits = withheld(this.#limits, ['memory'], `memory not limited in ${dir}: ${problem}`)
  }

  #limit (controller: Controller, writes: Array<[string, string]>): void {
    const dir = this.#dirs.get(controller)
    if (dir === undefined || !this.#limits[controller]) return
    for (const [file, value] of writes) {
      const problem = writeControl(dir, file, value)
      if (problem !== undefined) {
        this.#limits = withheld(this.#limits, [controller], `${controller} not limited in ${dir}: ${problem}`)
        return
      }
    }
  }
}

/** The daemon's own cgroup in a v1 hierarchy, where it is visible under the root; else the hierarchy's root. */
function ownCgroupDir (root: string, controller: Controller): string {
  const hierarchy = join(root, controller)
  let path: string | undefined
  try {
    // lines are `<id>:<controllers>:<path>`
    for (const line of readFileSync('/proc/self/cgroup', 'utf8').split('\n')) {
      const [, controllers, ...rest] = line.split(':')
      if (controllers?.split(',').includes(controller)) path = rest.join(':')
    }
  } catch {}
  if (path === undefined || path === '/' || !existsSync(join(hierarchy, path))) return hierarchy
  return join(hierarchy, path)
}
