// Home files that do not hold what they should are refused by the loader's own checks: the
// HomeError names the file, and its cause is a refusal, not a TypeError from reading a field
// of an entry that is null (found by the fuzzer: `[null]` in members.json, invites.json or bridges.json).
import { describe, it, expect, afterAll } from 'vitest'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Home, InviteBook, MemberBook, HomeError } from '../../node/home/index.ts'
import { BridgeBook } from '../../node/bridge/bridge-book.ts'

const dir = mkdtempSync(join(tmpdir(), 'mycelium-home-files-'))
afterAll(() => { rmSync(dir, { recursive: true, force: true }) })

function refusal (load: () => unknown): unknown {
  try {
    load()
  } catch (err) {
    return err
  }
  throw new Error('the file was accepted')
}

describe('home files with entries that are not records', () => {
  const home = new Home(dir)
  for (const [file, load] of [['members.json', () => new MemberBook(home).list()], ['invites.json', () => new InviteBook(home).list()], ['bridges.json', () => new BridgeBook(home).list()]] as const) {
    it(`${file}: refused by its check, with the check's reason as cause`, () => {
      for (const content of ['[null]', '[1]', '["x"]', '[[]]']) {
        writeFileSync(join(dir, file), content)
        const err = refusal(load) as HomeError
        expect(err, content).toBeInstanceOf(HomeError)
        expect(err.message, content).toContain(file)
        expect((err.cause as Error).name, content).not.toBe('TypeError')
      }
    })
  }
})
