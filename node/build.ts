// npm run build:node — bundles the daemon and CLI into dist/mycelium.mjs and its chunks, which
// install.sh installs and the test harness runs. A bundled daemon loads far less code than the
// module graph of the sources, which is most of a node's memory (see README, "Memory"); what
// is left is cut further here, each measured with `npm run bench:node`. Native modules stay
// external.
import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, unlinkSync, writeFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { build, version as esbuildVersion, type Plugin } from 'esbuild'

const root = join(import.meta.dirname, '..')
const dist = join(root, 'dist')
const CHUNK_PREFIX = 'mycelium-chunk-'
const KAD_PREFIXES = 'mycelium-kad-prefixes.bin'
// the prefix table below is written into dist/ while esbuild runs, before it makes the folder
mkdirSync(dist, { recursive: true })

/**
 * What the last build read and wrote, so a build whose inputs and outputs are unchanged is
 * skipped: the bundle is left as it is instead of being rewritten in place while daemons may be
 * loading it (install.sh and the test suite each build it, sometimes at the same time), and an
 * unchanged tree installs without two seconds of bundling. Kept beside the dev tools, not in
 * dist/, which install.sh copies.
 */
const STAMP = join(root, 'node_modules/.cache/mycelium-build/stamp.json')
interface Stamp { key: string, inputs: Record<string, string>, outputs: Record<string, string> }
const digest = (file: string): string => createHash('sha256').update(readFileSync(file)).digest('hex')
// this script and esbuild decide how the inputs become the bundle; the checkout is part of the
// key because node_modules (where the stamp lives) may be shared by several checkouts
const buildKey = `${esbuildVersion} ${digest(import.meta.filename)} ${root}`

function upToDate (): boolean {
  try {
    const stamp = JSON.parse(readFileSync(STAMP, 'utf8')) as Stamp
    return stamp.key === buildKey &&
      [...Object.entries(stamp.inputs), ...Object.entries(stamp.outputs)].every(([file, hash]) => existsSync(file) && digest(file) === hash)
  } catch {
    return false
  }
}

if (process.env.MYCELIUM_REBUILD !== '1' && upToDate()) {
  console.log('dist/mycelium.mjs: up to date (its inputs are unchanged; MYCELIUM_REBUILD=1 builds it anyway)')
  process.exit(0)
}

/**
 * `import … from 'node:http'` in an ES module makes Node build the module's ESM facade, which
 * reads every export, and node:http's lazy getters (WebSocket, fetch's classes …) then load
 * undici: ~0.7 MiB of source compiled at start for a client no node uses. Required as CommonJS,
 * the module's exports are read only when used.
 */
const builtinsAsCommonJs: Plugin = {
  name: 'builtins-as-commonjs',
  setup (b) {
    b.onResolve({ filter: /^(node:)?https?$/ }, (args) => args.kind === 'import-statement' ? { path: args.path.replace(/^node:/, ''), namespace: 'builtin-cjs' } : undefined)
    b.onLoad({ filter: /.*/, namespace: 'builtin-cjs' }, (args) => ({ contents: `module.exports = require('node:${args.path}')`, loader: 'js' }))
  }
}

/**
 * kad-dht's table of 65,536 key prefixes (to refresh its routing table) is an 836 KB array
 * literal, parsed at every start and then held twice (the literal's template and the array).
 * It is written once beside the bundle as 256 KiB of little-endian uint32 (the byte order of
 * x86_64 and aarch64 alike) and read when the DHT first refreshes.
 */
const kadPrefixesFromFile: Plugin = {
  name: 'kad-prefixes-from-file',
  setup (b) {
    b.onLoad({ filter: /@libp2p[\\/]kad-dht[\\/]dist[\\/]src[\\/]routing-table[\\/]generated-prefix-list\.js$/ }, async (args) => {
      const { default: prefixes } = await import(pathToFileURL(args.path).href) as { default: number[] }
      const bytes = Buffer.alloc(prefixes.length * 4)
      prefixes.forEach((p, i) => bytes.writeUInt32LE(p, i * 4))
      writeFileSync(join(dist, KAD_PREFIXES), bytes)
      return {
        loader: 'js',
        contents: `import { readFileSync } from 'node:fs'
let table
const load = () => { const b = readFileSync(new URL('./${KAD_PREFIXES}', import.meta.url)); return new Uint32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)) }
export default new Proxy([], { get: (_, key) => (table ??= load())[key] })`
      }
    })
  }
}

/**
 * @libp2p/noise seals and opens frames under 1,200 bytes with WebAssembly builds of ChaCha20-
 * Poly1305 and SHA-256 (@chainsafe/as-*), instantiated when the module loads: two WebAssembly
 * compilations at every start and V8's WebAssembly compiler paged in for good. node:crypto
 * (OpenSSL) already seals every larger frame; the bundle takes these two packages from
 * build-shims/, which give noise the same interfaces on node:crypto.
 */
const noiseOnNodeCrypto: Plugin = {
  name: 'noise-on-node-crypto',
  setup (b) {
    b.onResolve({ filter: /^@chainsafe\/as-(chacha20poly1305|sha256)$/ }, (args) => ({ path: join(import.meta.dirname, 'build-shims', `${args.path.split('/')[1]}.ts`) }))
  }
}

const result = await build({
  entryPoints: { mycelium: join(root, 'bin/mycelium.js') },
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node22',
  outdir: dist,
  outExtension: { '.js': '.mjs' },
  // What a module loads with import() goes into a chunk of its own, read only when imported:
  // an external's static import (node-datachannel for WebRTC) would otherwise be hoisted to
  // the top of the one file and loaded by every start. Chunks sit beside the entry, so
  // import.meta.dirname is dist/ in all of them.
  splitting: true,
  chunkNames: `${CHUNK_PREFIX}[hash]`,
  metafile: true,
  external: ['node-datachannel', 'koffi', 'classic-level', 'pino-pretty', 'playwright-core'],
  // Without comments and indentation the source V8 keeps for the whole bundle is a third of
  // the size, and pure ASCII (a comment's "—" made V8 hold all of it as UTF-16): ~7 MiB less
  // RSS and less to parse. Names are kept, so stack traces still read.
  minifyWhitespace: true,
  minifySyntax: true,
  charset: 'ascii',
  // import.meta is the bundle's own in every bundled module, so `import.meta.main` (a script
  // run directly, e.g. browser-client/build.ts) would be true for all of them: each start
  // rebuilt the browser client, and failed where esbuild is not installed
  define: { 'import.meta.main': 'false' },
  banner: { js: 'import { createRequire as __createRequire } from \'node:module\'; const require = __createRequire(import.meta.url);' },
  plugins: [builtinsAsCommonJs, kadPrefixesFromFile, noiseOnNodeCrypto],
  logLevel: 'warning'
})
// chunks of earlier builds, except recent ones a daemon started from them may still import
const written = new Set(Object.keys(result.metafile.outputs).map(p => p.split('/').pop()))
for (const name of readdirSync(dist)) {
  if (name.startsWith(CHUNK_PREFIX) && !written.has(name) && Date.now() - statSync(join(dist, name)).mtimeMs > 3_600_000) unlinkSync(join(dist, name))
}
// inputs in esbuild's own namespaces (the CommonJS builtins above) are no files
const inputs = Object.keys(result.metafile.inputs).filter(p => !/^[a-z-]+:/.test(p)).map(p => resolve(p))
const outputs = [...Object.keys(result.metafile.outputs).map(p => resolve(p)), join(dist, KAD_PREFIXES)]
const hashes = (files: string[]): Record<string, string> => Object.fromEntries(files.map(p => [p, digest(p)]))
mkdirSync(dirname(STAMP), { recursive: true })
writeFileSync(STAMP, JSON.stringify({ key: buildKey, inputs: hashes(inputs), outputs: hashes(outputs) } satisfies Stamp))
const bytes = Object.values(result.metafile.outputs).reduce((sum, o) => sum + o.bytes, 0)
console.log(`dist/mycelium.mjs: ${(bytes / 1024 / 1024).toFixed(2)} MiB with its ${written.size - 1} chunks`)
