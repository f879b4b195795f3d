import { defineConfig } from 'vitest/config'
import { ListedDaemonOrder } from './test/harness/daemon-order.ts'

// Files that start several daemon processes (or a browser and daemons). On a 2-core machine
// two of them at once starve each other's daemons, so they run one at a time, in this order
// (test/harness/daemon-order.ts): the files with sub-second timers (VM leases) last, when the
// in-process files that `npm test` runs beside them are done.
export const DAEMON_FILES = [
  'test/install/install.test.ts',
  'test/install/install-aarch64.test.ts',
  // one or two daemons each: the aarch64 install that `npm test` runs beside the first files
  // (test/harness/run-suite.ts) gets its share of the CPU while its emulated node starts
  'test/node/bad-input.test.ts',
  'test/node/join-requests.test.ts',
  'test/roles/daemon.test.ts',
  'test/spores/daemon.test.ts',
  'test/consensus/bft-daemon.test.ts',
  'test/consensus/bft-daemon-partition.test.ts',
  'test/operator/identity.test.ts',
  'test/operator/bridge.test.ts',
  'test/node/network.test.ts',
  'test/node/netns.test.ts',
  'test/browser/browser-client.test.ts',
  'test/workloads/apps-daemon.test.ts',
  'test/workloads/single-instance.test.ts',
  'test/ram-replication/daemon.test.ts',
  'test/ram-replication/netns-partition.test.ts'
]

const shared = {
  pool: 'forks' as const,
  testTimeout: 60_000,
  hookTimeout: 120_000
}

export default defineConfig({
  test: {
    globalSetup: ['test/harness/global-setup.ts'],
    sequence: { sequencer: ListedDaemonOrder },
    // `npm test` gives each of its two vitest processes a report of its own (test/harness/run-suite.ts)
    reporters: ['default', ['json', { outputFile: process.env.MYCELIUM_JSON_REPORT ?? 'test-results/vitest.json' }]],
    projects: [
      {
        test: {
          ...shared,
          name: 'in-process',
          include: ['test/**/*.test.ts'],
          exclude: DAEMON_FILES,
          // `npm test` runs this project beside the daemon files with one worker (test/harness/run-suite.ts)
          maxWorkers: Number(process.env.MYCELIUM_IN_PROCESS_WORKERS ?? 2),
          sequence: { groupOrder: 0 }
        }
      },
      {
        test: {
          ...shared,
          name: 'daemons',
          include: DAEMON_FILES,
          maxWorkers: 1,
          fileParallelism: false,
          sequence: { groupOrder: 1 }
        }
      }
    ]
  }
})
