// Benchmarks that run libp2p from the sources give @libp2p/noise the same node:crypto
// ChaCha20-Poly1305 and SHA-256 that the bundle builds in (node/build.ts, node/build-shims/),
// so they measure what an installed daemon runs, not the WebAssembly packages. Call it before
// @libp2p/noise is first imported in the thread (a dynamic import after this call).
import { registerHooks } from 'node:module'
import { pathToFileURL } from 'node:url'
import { join } from 'node:path'

const SHIMS = join(import.meta.dirname, '..', '..', 'node', 'build-shims')
const SHIMMED = /^@chainsafe\/as-(chacha20poly1305|sha256)$/

let registered = false

export function noiseAsBundled (): void {
  if (registered) return
  registered = true
  registerHooks({
    resolve (specifier, context, next) {
      const m = SHIMMED.exec(specifier)
      if (m !== null) return { url: pathToFileURL(join(SHIMS, `as-${m[1]}.ts`)).href, shortCircuit: true }
      return next(specifier, context)
    }
  })
}
