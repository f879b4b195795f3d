// Opens an instance's cgroup of the kind the host has, or none: without writable cgroups an
// instance still runs, and its limits say that nothing holds it.
import { detectCgroups, type EnforcedLimits } from './enforced-limits.ts'
import { CgroupV1 } from './cgroup-v1.ts'
import { CgroupV2 } from './cgroup-v2.ts'
import type { CgroupResources, InstanceCgroup } from './instance-cgroup.ts'

export function openInstanceCgroup (instanceId: string, resources: CgroupResources, options: { cgroupRoot?: string } = {}): InstanceCgroup {
  const detected = detectCgroups(options)
  if (detected.cgroup === 'v2') return new CgroupV2(options.cgroupRoot, instanceId, resources, detected)
  if (detected.cgroup === 'v1') return new CgroupV1(options.cgroupRoot, instanceId, resources, detected)
  return uncontained(detected)
}

function uncontained (limits: EnforcedLimits): InstanceCgroup {
  return {
    limits,
    admit () {},
    signal () {},
    members: () => [],
    remove: async () => undefined
  }
}
