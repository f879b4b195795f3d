// What both install test files share: running install.sh and the installed command with an
// environment like a fresh machine's, in a temporary root of their own.
import { execFile } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs'
import { homedir, tmpdir } from 'node:os'
import { delimiter, join } from 'node:path'
import { REPO_ROOT } from '../harness/index.ts'

export const CACHE = join(REPO_ROOT, 'node_modules/.cache/mycelium-install')
export const INSTALL = join(REPO_ROOT, 'install.sh')
export const VERSION = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')).version as string
// the Node this checkout already runs on: npm's cache holds it, so the installer fetches
// nothing new for it (the aarch64 one is kept in CACHE after the first run)
const NODE_PACKAGE = join(REPO_ROOT, 'node_modules/node/package.json')
const NODE_VERSION = existsSync(NODE_PACKAGE) ? JSON.parse(readFileSync(NODE_PACKAGE, 'utf8')).version as string : '24'

export interface Run { code: number, stdout: string, stderr: string }

export function run (cmd: string, args: string[], env: Record<string, string>, timeoutMs = 180_000): Promise<Run> {
  return new Promise((resolve) => {
    execFile(cmd, args, { env, timeout: timeoutMs, encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout, stderr })
    })
  })
}

export interface InstallRoot { root: string, prefix: string, data: string, units: string, bin: string, env: Record<string, string> }

/** A temporary root to install into, and the installer's environment pointing into it. */
export function installRoot (): InstallRoot {
  const root = mkdtempSync(join(tmpdir(), 'myc-install-'))
  const prefix = join(root, 'prefix')
  const data = join(root, 'data')
  const units = join(root, 'units')
  const bin = join(root, 'bin')
  // the machine's PATH without this repo's node_modules/.bin: the installer must find or
  // fetch its own Node, as on a fresh machine
  const env: Record<string, string> = {
    PATH: (process.env.PATH ?? '').split(delimiter).filter(p => !p.includes('node_modules')).join(delimiter),
    HOME: join(root, 'home'),
    MYCELIUM_PREFIX: prefix,
    MYCELIUM_HOME: data,
    MYCELIUM_UNIT_DIR: units,
    MYCELIUM_BIN_DIR: bin,
    MYCELIUM_SKIP_SERVICE: '1',
    MYCELIUM_FORCE_NODE: '1',
    MYCELIUM_NODE_CACHE: CACHE,
    MYCELIUM_NODE_VERSION: NODE_VERSION,
    // npm's own cache of this machine: dependencies already fetched are not fetched again
    npm_config_cache: join(homedir(), '.npm')
  }
  mkdirSync(env.HOME, { recursive: true })
  mkdirSync(CACHE, { recursive: true })
  return { root, prefix, data, units, bin, env }
}
