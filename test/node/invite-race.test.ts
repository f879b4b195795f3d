// invites.json is updated by the daemon (admissions) and by CLI processes (`network invite`,
// `network rotate-invites`) at once: every read-modify-write holds a cross-process lock, so
// a single-use invite admits exactly once and a used or revoked invite never comes back.
import { describe, it, expect } from 'vitest'
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Home, InviteBook, MemberBook } from '../../node/home/index.ts'
import { withFileLock } from '../../node/home/files.ts'
import { toHex } from '../../crypto/index.ts'

const CHILD = join(import.meta.dirname, 'invite-race-child.ts')
const INVITES = 80

async function run (dir: string, role: string, ids: string[], startAt: number): Promise<Record<string, string>> {
  return await new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CHILD, dir, role, ids.join(','), String(startAt)], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    child.stdout.on('data', (d: Buffer) => { out += d.toString() })
    child.stderr.on('data', (d: Buffer) => { err += d.toString() })
    child.on('exit', (code) => { code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`${role} child exited ${code}: ${err}`)) })
  })
}

function setup (): { dir: string, book: InviteBook, ids: string[] } {
  const dir = mkdtempSync(join(tmpdir(), 'myc-invite-race-'))
  const book = new InviteBook(new Home(dir))
  const now = Date.now()
  const ids = Array.from({ length: INVITES }, (_, i) => `00${i.toString(16).padStart(6, '0')}`)
  for (const id of ids) book.add({ id: Uint8Array.from(Buffer.from(id, 'hex')), secret: new Uint8Array(32), createdAt: now, expiresAt: now + 3_600_000, usesLeft: 1 }, now)
  return { dir, book, ids }
}

function oks (results: Array<Record<string, string>>, id: string): number {
  return results.filter(r => r[id] === 'ok').length
}

describe('invites.json under concurrent processes', () => {
  it('each single-use invite admits exactly once while other processes consume and add invites', async () => {
    const { dir, book, ids } = setup()
    try {
      const startAt = Date.now() + 1_500
      // every consumer tries every invite, in a different order; one more process keeps adding invites
      const orders = [ids, [...ids].reverse(), ids, [...ids].reverse(), ids]
      const [, ...results] = await Promise.all([run(dir, 'add', ids, startAt), ...orders.map(async o => await run(dir, 'consume', o, startAt))])
      // in-process consumes through a fresh book after the race: all used already
      const late = new InviteBook(new Home(dir))
      for (const id of ids) expect(late.consume(Uint8Array.from(Buffer.from(id, 'hex')), Date.now())).toBe('used')
      expect(ids.filter(id => oks(results, id) !== 1)).toEqual([])
      expect(book.list().filter(i => toHex(i.id).startsWith('00')).every(i => i.usesLeft === 0)).toBe(true)
      expect(book.list().filter(i => toHex(i.id).startsWith('ff'))).toHaveLength(INVITES)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  }, 60_000)

  it('rotating the invites while others consume never brings back a used or revoked invite', async () => {
    const { dir, book, ids } = setup()
    try {
      const startAt = Date.now() + 1_500
      const results = await Promise.all([run(dir, 'rotate', ids, startAt), ...[ids, [...ids].reverse(), ids, [...ids].reverse(), ids].map(async o => await run(dir, 'consume', o, startAt))])
      const consumed = results.slice(1)
      expect(ids.filter(id => oks(consumed, id) > 1)).toEqual([])
      // the last rotation came after some consumes; nothing written after it may restore the old book
      expect(book.list()).toEqual([])
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  }, 60_000)

  it('a lock left by a dead process is broken', () => {
    const dir = mkdtempSync(join(tmpdir(), 'myc-lock-'))
    try {
      const file = join(dir, 'invites.json')
      writeFileSync(`${file}.lock`, '999999999\n')
      expect(withFileLock(file, () => 'ran')).toBe('ran')
      expect(existsSync(`${file}.lock`)).toBe(false)
      expect(new MemberBook(new Home(dir)).list()).toEqual([])
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
