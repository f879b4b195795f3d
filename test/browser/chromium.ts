// Debian's Chromium for the browser tests, never a browser downloaded by a test tool. .ci/run
// installs it (apt-get install -y chromium); where it is missing the browser suites are
// skipped with that reason (test/harness/capabilities.ts).
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromium, type BrowserContext } from 'playwright-core'
import { CHROMIUM_PATH } from '../harness/index.ts'

const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']

/** One browser with its own fresh profile directory (its own storage, its own identity). */
export interface TestBrowser {
  context: BrowserContext
  close: () => Promise<void>
}

export async function openBrowser (): Promise<TestBrowser> {
  const profile = mkdtempSync(join(tmpdir(), 'myc-chromium-'))
  const context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM_PATH, headless: true, args: FLAGS, viewport: { width: 1280, height: 900 } })
  return {
    context,
    close: async () => {
      await context.close().catch(() => {})
      rmSync(profile, { recursive: true, force: true })
    }
  }
}
