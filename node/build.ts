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
  // import.meta is the bundle's own in every bundled module, so `import.meta.main` (a script
  // run directly, e.g. browser-client/build.ts) would be true for all of them: each start
  // rebuilt the browser client, and failed where esbuild is not installed
  '--define:import.meta.main=false',
  '--banner:js=import { createRequire as __createRequire } from \'node:module\'; const require = __createRequire(import.meta.url);',
  '--log-level=warning'
], { stdio: 'inherit' })
console.log(`dist/mycelium.mjs: ${(statSync(out).size / 1024 / 1024).toFixed(2)} MiB`)
