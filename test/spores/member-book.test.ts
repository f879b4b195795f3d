// The spores' book of origins: a member counts until its certificate expires (a browser tab's
// 12-hour certificate, say), across restarts; entries written before expiries were kept count
// as expired until the member is met again.
import { describe, it, expect } from 'vitest'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Level } from 'level'
import { MemberBook } from '../../node/spores/member-book.ts'

describe('the spores member book', () => {
  it('an origin counts until its certificate expires, also after a reopen', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'myc-book-'))
    try {
      const now = Date.now()
      let db = new Level<string, Uint8Array>(dir, { keyEncoding: 'utf8', valueEncoding: 'view' })
      await db.open()
      const book = await MemberBook.open(db, ['self'], now)
      await book.add('tab', now + 1_000)
      await book.add('server', now + 3_600_000)
      await db.sublevel<string, Uint8Array>('members', { keyEncoding: 'utf8', valueEncoding: 'view' }).put('legacy', new Uint8Array([1]))
      expect(book.has('tab', now)).toBe(true)
      expect(book.has('tab', now + 1_000)).toBe(false)
      expect(book.has('self', now + 10 * 365 * 86_400_000)).toBe(true)
      await db.close()

      db = new Level<string, Uint8Array>(dir, { keyEncoding: 'utf8', valueEncoding: 'view' })
      await db.open()
      const reopened = await MemberBook.open(db, ['self'], now + 2_000)
      expect(reopened.has('tab', now + 2_000)).toBe(false)
      expect(reopened.has('server', now + 2_000)).toBe(true)
      expect(reopened.has('legacy', now + 2_000)).toBe(false)
      // a member met again with a renewed certificate counts again
      await reopened.add('tab', now + 3_600_000)
      expect(reopened.has('tab', now + 2_000)).toBe(true)
      await db.close()
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
