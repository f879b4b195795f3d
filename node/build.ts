// npm run build:node — bundles the daemon and CLI into one ESM file. A bundled daemon loads
// far less code than the module graph of the sources, which is most of a node's memory
// (see README, "Memory"). Native modules stay external.
import { execFileSync } from 'node:child_process'
import { statSync } from 'node:fs'
import { join } from 'node:path'

const root = join(import.meta.dirname, '..')
const out = join(root, 'dist/mycelium.mjs')
execFileSync(join(root, 'node_modules/.bin/esbuild'), [
  join(root, 'bin/mycelium.js'),
  '--bundle', '--platform=node', '--format=esm', '--target=node22', `--outfile=${out}`,
  '--external:node-datachannel', '--external:koffi', '--external:classic-level', '--external:pino-pretty', '--external:playwright-core',
  '--banner:js=import { createRequire as __createRequire } from \'node:module\'; const require = __createRequire(import.meta.url);',
  '--log-level=warning'
], { stdio: 'inherit' })
console.log(`dist/mycelium.mjs: ${(statSync(out).size / 1024 / 1024).toFixed(2)} MiB`)
