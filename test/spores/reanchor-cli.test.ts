// `mycelium spores reanchor` on a home whose daemon is stopped: the anchor comes from an epoch
// and digest or from an invite, bad input gets one line and changes nothing, and a running
// daemon's store (held open) is left alone. What the reanchored node then does is in
// primary.test.ts (the held chain dropped, the primary spore taken again from the anchor).
import { describe, it, expect, afterAll } from 'vitest'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { Level } from 'level'
import { TestNode } from '../harness/index.ts'

describe('mycelium spores reanchor', () => {
  const node = new TestNode({ name: 'reanchor' })
  afterAll(async () => { await node.destroy() })
  const anchorFile = (): string => join(node.home, 'epoch-anchor.json')
  const digest = 'ab'.repeat(32)

  it('refuses bad input with one line and writes nothing', async () => {
    const outside = await node.cli(['spores', 'reanchor', '--epoch', '5', '--digest', digest])
    expect(outside.code).toBe(1)
    expect(outside.stderr.trim()).toBe('mycelium: this node is in no network: there is no primary spore to reanchor')
    expect((await node.cli(['network', 'create', 'reanchor-net'])).code).toBe(0)
    for (const [args, line] of [
      [[], /^mycelium: give --invite TOKEN, or --epoch N and --digest HEX$/],
      [['--epoch', '5'], /^mycelium: give --invite TOKEN, or --epoch N and --digest HEX$/],
      [['--epoch', 'five', '--digest', digest], /--epoch must be an epoch number/],
      [['--epoch', '5', '--digest', 'abc'], /--digest must be the epoch's 64 hex digits/],
      [['--invite', 'myc1.nonsense'], /invite is malformed/]
    ] as Array<[string[], RegExp]>) {
      // one line says what is wrong (a usage error adds the command's usage line)
      const r = await node.cli(['spores', 'reanchor', ...args])
      expect(r.code, args.join(' ')).not.toBe(0)
      const lines = r.stderr.trim().split('\n')
      expect(lines[0], args.join(' ')).toMatch(line)
      expect(lines.slice(1).every(l => l.startsWith('usage: mycelium spores reanchor')), args.join(' ')).toBe(true)
    }
    // an invite made without a daemon carries no epoch
    const invite = (await node.cli(['network', 'invite', '--bootstrap', '/ip4/127.0.0.1/tcp/4001'])).stdout.trim()
    const r = await node.cli(['spores', 'reanchor', '--invite', invite])
    expect(r.code).toBe(2)
    expect(r.stderr.split('\n')[0]).toMatch(/^mycelium: the invite carries no certified epoch/)
    expect(existsSync(anchorFile())).toBe(false)
  })

  it('leaves a store that is held open (a running daemon) alone', async () => {
    const db = new Level(join(node.home, 'spores'))
    await db.open()
    try {
      const r = await node.cli(['spores', 'reanchor', '--epoch', '5', '--digest', digest])
      expect(r.code).toBe(1)
      expect(r.stderr.trim()).toBe('mycelium: the daemon of this home is running: stop it first (mycelium stop), then reanchor')
    } finally {
      await db.close()
    }
    expect(existsSync(anchorFile())).toBe(false)
  })

  it('keeps the anchor for the next start', async () => {
    const r = await node.cli(['spores', 'reanchor', '--epoch', '5', '--digest', digest.toUpperCase(), '--json'])
    expect(r.code).toBe(0)
    expect(JSON.parse(r.stdout)).toEqual({ epoch: 5, dropped: null })
    const kept = JSON.parse(readFileSync(anchorFile(), 'utf8'))
    expect(kept.epoch).toBe(5)
    expect(Buffer.from(kept.digest, 'base64url').toString('hex')).toBe(digest)
  })
})
