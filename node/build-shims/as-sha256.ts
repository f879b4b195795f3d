// What @libp2p/noise imports of @chainsafe/as-sha256, on node:crypto instead of a WebAssembly
// module compiled at every start; node/build.ts puts it in the bundle in the package's place.
import { createHash } from 'node:crypto'

export function digest (data: Uint8Array): Uint8Array {
  return createHash('sha256').update(data).digest()
}
