// An instance's cgroup on a cgroup v2 host: `<root>/mycelium/<instanceId>`, with the memory,
// cpu and pids controllers enabled down to it. It sits at the root rather than in the daemon's
// own cgroup because v2 lets only a cgroup without processes of its own hand controllers on,
// and the daemon's cgroup has the daemon in it.
import { join } from 'node:path'
import { DEFAULT_CGROUP_ROOT, CONTROLLERS, unenforced, type Controller, type EnforcedLimits } from './enforced-limits.ts'
import { cgroupMembers, removeCgroup, signalMembers, writeControl } from './cgroup-files.ts'
import { CPU_PERIOD_US, PIDS_MAX, cpuQuotaUs, makeCgroupDir, memoryBytes, withheld, type CgroupResources, type InstanceCgroup } from './instance-cgroup.ts'

export class CgroupV2 implements InstanceCgroup {
  readonly #dir: string
  readonly #created: boolean
  #limits: EnforcedLimits

  constructor (cgroupRoot: string | undefined, instanceId: string, resources: CgroupResources, detected: EnforcedLimits) {
    const root = cgroupRoot ?? DEFAULT_CGROUP_ROOT
    const parent = join(root, 'mycelium')
    this.#dir = join(parent, instanceId)
    this.#limits = detected
    const problem = makeCgroupDir(this.#dir)
    this.#created = problem === undefined
    if (problem !== undefined) {
      this.#limits = unenforced(detected.session, problem)
      return
    }
    // processes left by an earlier run of this instance, whose daemon died without stopping it
    signalMembers(this.#dir, 'SIGKILL')
    for (const c of CONTROLLERS) {
      if (!detected[c]) continue
      // already enabled, or refused: either way the limit's own write below tells
      writeControl(root, 'cgroup.subtree_control', `+${c}`)
      writeControl(parent, 'cgroup.subtree_control', `+${c}`)
    }
    this.#limit('memory', 'memory.max', String(memoryBytes(resources)))
    // swap would let the instance past its memory limit; a host without swap accounting lacks the file
    if (this.#limits.memory) writeControl(this.#dir, 'memory.swap.max', '0')
    this.#limit('cpu', 'cpu.max', `${cpuQuotaUs(resources)} ${CPU_PERIOD_US}`)
    this.#limit('pids', 'pids.max', String(PIDS_MAX))
  }

  get limits (): EnforcedLimits {
    return this.#limits
  }

  admit (pid: number): void {
    if (!this.#created) return
    const problem = writeControl(this.#dir, 'cgroup.procs', String(pid))
    if (problem !== undefined) this.#limits = withheld(this.#limits, CONTROLLERS, `the process was not admitted to ${this.#dir} (${problem})`)
  }

  signal (signal: NodeJS.Signals): void {
    if (this.#created) signalMembers(this.#dir, signal)
  }

  members (): number[] {
    return this.#created ? cgroupMembers(this.#dir) : []
  }

  async remove (): Promise<string | undefined> {
    return this.#created ? await removeCgroup(this.#dir) : undefined
  }

  #limit (controller: Controller, file: string, value: string): void {
    if (!this.#limits[controller]) return
    const problem = writeControl(this.#dir, file, value)
    if (problem !== undefined) this.#limits = withheld(this.#limits, [controller], `${controller} not limited in ${this.#dir}: ${problem}`)
  }
}
