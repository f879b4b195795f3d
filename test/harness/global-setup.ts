// Runs once before the suite: bundles the daemon and CLI (`npm run build:node`), so the
// multi-daemon tests run what install.sh installs, and each daemon and CLI call costs a third
// of the CPU the TypeScript sources cost on a busy 2-core machine. MYCELIUM_TEST_SOURCES=1
// runs the sources instead (then nothing is built).
import { execFileSync } from 'node:child_process'
import { join } from 'node:path'
import { NODE, REPO_ROOT } from './test-node.ts'

export default function setup (): void {
  // MYCELIUM_BUNDLE_BUILT: `npm test` built it once before starting two vitest processes
  if (process.env.MYCELIUM_TEST_SOURCES === '1' || process.env.MYCELIUM_BUNDLE_BUILT === '1') return
  execFileSync(NODE, [join(REPO_ROOT, 'node/build.ts')], { stdio: ['ignore', 'ignore', 'inherit'] })
}
