// Debian's Chromium for the browser tests: installed with apt-get when missing and this
// process is root; never a browser downloaded by a test tool.
import { existsSync } from 'node:fs'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromium, type BrowserContext } from 'playwright-core'

export const CHROMIUM = '/usr/bin/chromium'
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']

export class ChromiumUnavailableError extends Error {
  readonly name = 'ChromiumUnavailableError'
}

export function ensureChromium (): string {
  if (existsSync(CHROMIUM)) return CHROMIUM
  if (process.getuid?.() !== 0) throw new ChromiumUnavailableError(`${CHROMIUM} is missing and this user cannot install it: run \`sudo apt-get install -y chromium\``)
  try {
    execFileSync('apt-get', ['update', '-qq'], { stdio: 'ignore', timeout: 300_000 })
    execFileSync('apt-get', ['install', '-y', '-qq', 'chromium'], { stdio: 'ignore', timeout: 600_000, env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } })
  } catch (err) {
    throw new ChromiumUnavailableError(`apt-get install chromium failed: ${(err as Error).message.split('\n')[0]}`)
  }
  if (!existsSync(CHROMIUM)) throw new ChromiumUnavailableError(`apt-get install chromium did not provide ${CHROMIUM}`)
  return CHROMIUM
}

/** One browser with its own fresh profile directory (its own storage, its own identity). */
export interface TestBrowser {
  context: BrowserContext
  close: () => Promise<void>
}

export async function openBrowser (): Promise<TestBrowser> {
  const profile = mkdtempSync(join(tmpdir(), 'myc-chromium-'))
  const context = await chromium.launchPersistentContext(profile, { executablePath: ensureChromium(), headless: true, args: FLAGS, viewport: { width: 1280, height: 900 } })
  return {
    context,
    close: async () => {
      await context.close().catch(() => {})
      rmSync(profile, { recursive: true, force: true })
    }
  }
}
