// Bundles the hyphae web client for browsers into dist/browser/ and prints its size.
// Run with `npm run build:browser`; `npm ci` runs it too (the "prepare" script), and the
// daemon builds it on first use when it is missing.
import { gzipSync } from 'node:zlib'
import { copyFileSync, mkdirSync, readFileSync, renameSync, rmSync, existsSync } from 'node:fs'
import { join, resolve } from 'node:path'

const ROOT = resolve(import.meta.dirname, '..')
export const BROWSER_BUNDLE_DIR = join(ROOT, 'dist/browser')
/** Files the daemon serves, all of them written by the build. */
export const BROWSER_BUNDLE_FILES = ['index.html', 'app.js', 'app.css'] as const

export interface BrowserBundle {
  dir: string
  /** app.js, raw and gzipped */
  bytes: number
  gzipBytes: number
}

export class BrowserBuildError extends Error {
  readonly name = 'BrowserBuildError'
}

/** Builds into a fresh directory and swaps it in, so a daemon never serves a half-written bundle. */
export async function buildBrowserClient (options: { outDir?: string } = {}): Promise<BrowserBundle> {
  const outDir = options.outDir ?? BROWSER_BUNDLE_DIR
  const staging = `${outDir}.building-${process.pid}`
  rmSync(staging, { recursive: true, force: true })
  mkdirSync(staging, { recursive: true })
  try {
    // loaded here, not at the top, and by a name a bundler leaves alone: a daemon installed
    // without dev dependencies (or bundled by npm run build:node) still starts
    const esbuild = 'esbuild'
    const { build } = await import(esbuild) as typeof import('esbuild')
    await build({
      entryPoints: [join(ROOT, 'browser-client/app/main.ts')],
      outfile: join(staging, 'app.js'),
      bundle: true,
      format: 'esm',
      platform: 'browser',
      // picks crypto/ed25519-noble.ts for "#ed25519" (package.json "imports")
      conditions: ['browser'],
      target: 'es2022',
      minify: true,
      legalComments: 'none',
      logLevel: 'silent',
      define: { 'process.env.NODE_ENV': '"production"', global: 'globalThis' }
    })
    copyFileSync(join(ROOT, 'browser-client/index.html'), join(staging, 'index.html'))
    copyFileSync(join(ROOT, 'browser-client/app.css'), join(staging, 'app.css'))
  } catch (err) {
    rmSync(staging, { recursive: true, force: true })
    throw new BrowserBuildError(`the browser client did not build: ${(err as Error).message}`)
  }
  const js = readFileSync(join(staging, 'app.js'))
  // Several daemons started at once on one machine build at once: each swaps its copy in, and
  // one that finds the directory changing under it tries again, or keeps another's complete copy.
  for (let attempt = 0; ; attempt++) {
    try {
      rmSync(outDir, { recursive: true, force: true })
      renameSync(staging, outDir)
      break
    } catch (err) {
      if (attempt < 5) { await new Promise(resolve => setTimeout(resolve, 50 + Math.random() * 100)); continue }
      rmSync(staging, { recursive: true, force: true })
      if (!existsSync(join(outDir, 'app.js'))) throw new BrowserBuildError(`could not install the browser bundle in ${outDir}: ${(err as Error).message}`)
      break
    }
  }
  return { dir: outDir, bytes: js.length, gzipBytes: gzipSync(js, { level: 9 }).length }
}

if (import.meta.main) {
  const started = Date.now()
  const bundle = await buildBrowserClient()
  const kb = (n: number): string => `${(n / 1024).toFixed(1)} KB`
  console.log(`browser client: ${bundle.dir}/app.js ${kb(bundle.bytes)} (${kb(bundle.gzipBytes)} gzipped, target ≤ 600 KB) in ${Date.now() - started} ms`)
}
