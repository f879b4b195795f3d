// The handshake's first frames from a stranger: whatever the hello holds, it is refused with a
// named membership error, never a TypeError (found by the fuzzer: a network id sent as a CBOR
// map made String() throw, since decoded maps have no prototype).
import { describe, it, expect } from 'vitest'
import { encodeCanonical } from '../../crypto/index.ts'
import { MembershipError } from '../../membership/index.ts'
import { decodeHello } from '../../membership/handshake.ts'

describe('a membership hello from another network', () => {
  it('is refused by name whatever its network field holds', () => {
    for (const net of [{ a: 1 }, [1, 2], new Uint8Array(3), 7, null, 'myc' + 'a'.repeat(200)]) {
      expect(() => decodeHello(encodeCanonical({ t: 'member', net, chain: [] }), 'mycabcdefghijklmnopqrst'), JSON.stringify(net)).toThrow(MembershipError)
    }
  })
})
