// The host's memory page size, read at run time: 4 KiB on x86-64, 16 KiB on the 64-bit kernels of
// a Raspberry Pi 5, 64 KiB on some arm64 servers. Whatever maps or scans host memory uses this.
import koffi from 'koffi'

const SC_PAGESIZE = 30 // _SC_PAGESIZE in glibc on Linux (x86-64 and aarch64 alike)
let cached: number | undefined

export function hostPageSize (): number {
  if (cached !== undefined) return cached
  try {
    const sysconf = koffi.load('libc.so.6').func('long sysconf(int name)')
    const size = Number(sysconf(SC_PAGESIZE))
    cached = size >= 4096 && (size & (size - 1)) === 0 ? size : 4096
  } catch {
    cached = 4096
  }
  return cached
}
