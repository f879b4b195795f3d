// What a member says it can host is untrusted: decoded once, anything malformed refused, and a
// member that cannot resume the guest never chosen as its backup.
import { describe, expect, it } from 'vitest'
import { cannotHost, decodeCapability, type ReplicaCapability } from '../../ram-replication/index.ts'

const encode = (v: unknown): Uint8Array => new TextEncoder().encode(typeof v === 'string' ? v : JSON.stringify(v))
const good: ReplicaCapability = { arch: 'arm64', hostPageSize: 16384, engines: ['interpreted'], freeReplicaBytes: 1 << 30 }

describe('a member\'s capability answer', () => {
  it('decodes a well-formed answer and refuses garbage with a clear error', () => {
    expect(decodeCapability(encode(good))).toEqual(good)
    for (const [bad, why] of [
      ['{', /not JSON/], [null, /not an object/], [{ ...good, arch: '../x' }, /arch/],
      [{ ...good, hostPageSize: 3000 }, /page size/], [{ ...good, engines: ['qemu'] }, /unknown engine/],
      [{ ...good, freeReplicaBytes: -1 }, /byte count/]
    ] as Array<[unknown, RegExp]>) expect(() => decodeCapability(encode(bad))).toThrow(why)
  })

  it('says why a member cannot back a guest up', () => {
    expect(cannotHost(good, { engine: 'interpreted', memoryBytes: 1 << 20 })).toBeUndefined()
    expect(cannotHost(good, { engine: 'kvm', memoryBytes: 1 << 20 })).toMatch(/cannot run the kvm engine \(arm64/)
    expect(cannotHost({ ...good, freeReplicaBytes: 0 }, { engine: 'interpreted', memoryBytes: 1 << 20 })).toMatch(/room for 0 MiB/)
  })
})
