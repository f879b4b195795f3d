// A member's BFT votes survive a restart: what the engine recorded before a vote went out is
// there when the node comes back (so it neither votes twice in an attempt nor forgets its lock),
// a damaged file is set aside instead of killing the node, and the file is private.
import { describe, it, expect, afterEach } from 'vitest'
import { mkdtempSync, rmSync, writeFileSync, existsSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { FileVoteStore, VOTES_FILE } from '../../node/consensus/vote-file.ts'
import { commitRefusal, mayReveal, type KeyVotes } from '../../consensus/index.ts'

const dirs: string[] = []
afterEach(() => { for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true }) })

function home (): string {
  const d = mkdtempSync(join(tmpdir(), 'myc-votes-'))
  dirs.push(d)
  return d
}

const bytes = (n: number, len = 32): Uint8Array => new Uint8Array(len).fill(n)

describe('BFT votes file', () => {
  it('keeps commits, locks and proposals across a restart, and forgets a decided key', () => {
    const path = join(home(), VOTES_FILE)
    const votes: KeyVotes = {
      committed: { attempt: 3, round: bytes(3), inputDigest: bytes(7), result: bytes(9), nonce: bytes(11) },
      lock: { attempt: 3, inputDigest: bytes(7), result: bytes(9), proposal: bytes(1, 200), commits: [bytes(2, 100), bytes(4, 100), bytes(5, 100)] },
      proposed: { attempt: 2, proposal: bytes(6, 300) }
    }
    new FileVoteStore(path).put('epoch:12', votes)
    expect(statSync(path).mode & 0o777).toBe(0o600)
    const again = new FileVoteStore(path)
    expect(again.get('epoch:12')).toEqual(votes)
    // After the restart the rules still hold: no second commit in attempt 3, none to another input without a polka.
    expect(commitRefusal(again.get('epoch:12'), 3, bytes(7), undefined)).toMatch(/already committed/)
    expect(commitRefusal(again.get('epoch:12'), 4, bytes(8), undefined)).toMatch(/locked/)
    expect(mayReveal(again.get('epoch:12'), 3, bytes(3))).toBe(true)
    again.delete('epoch:12')
    expect(new FileVoteStore(path).get('epoch:12')).toBeUndefined()
  })

  it('sets a damaged file aside and starts without remembered votes', () => {
    const dir = home()
    const path = join(dir, VOTES_FILE)
    for (const junk of [new Uint8Array([0xff, 0x00, 0x13]), new TextEncoder().encode('{"epoch:1": 5}'), new Uint8Array([0xa1, 0x61, 0x6b, 0xa1, 0x69, 0x63, 0x6f, 0x6d, 0x6d, 0x69, 0x74, 0x74, 0x65, 0x64, 0x01])]) {
      writeFileSync(path, junk)
      const warnings: string[] = []
      const store = new FileVoteStore(path, { warn: (_o, msg) => warnings.push(msg) })
      expect(store.get('k')).toBeUndefined()
      expect(warnings).toEqual(['BFT votes file does not decode; set aside, starting without remembered votes'])
      expect(existsSync(`${path}.broken`)).toBe(true)
      expect(existsSync(path)).toBe(false)
    }
  })
})
