// Runs the daemon files in the order vitest.config.ts lists them. `npm test` runs the
// in-process files beside them for the first minutes of the run, so the files whose daemons
// keep sub-second timers (VM leases renew every 125 ms) are listed last, to run once the
// machine is quieter; other groups of files keep vitest's own order.
import { BaseSequencer, type TestSpecification } from 'vitest/node'
import { DAEMON_FILES } from '../../vitest.config.ts'

export class ListedDaemonOrder extends BaseSequencer {
  override async sort (files: TestSpecification[]): Promise<TestSpecification[]> {
    const sorted = await super.sort(files)
    const rank = (f: TestSpecification): number => DAEMON_FILES.findIndex(listed => f.moduleId.endsWith(listed))
    if (!sorted.some(f => rank(f) >= 0)) return sorted
    return [...sorted].sort((a, b) => (rank(a) < 0 ? Infinity : rank(a)) - (rank(b) < 0 ? Infinity : rank(b)))
  }
}
