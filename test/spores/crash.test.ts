import { describe, it, expect } from 'vitest'
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { randomSecretKey, getPublicKey } from '../../crypto/index.ts'
import { Spores, signerOf, verifyEntrySignature } from '../../spores/index.ts'
import { tempDir } from './fixtures.ts'

describe('spore database crash safety', () => {
  it('keeps every acknowledged batch and no torn entry after SIGKILL during writes', async () => {
    const dir = await tempDir('spores-crash-')
    try {
      const child = spawn('node', [join(import.meta.dirname, 'crash-writer.ts'), dir.path], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PATH: `${join(import.meta.dirname, '../../node_modules/.bin')}:${process.env.PATH ?? ''}` } })
      const acked: string[] = []
      let stderr = ''
      child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
      let buffer = ''
      const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)))
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`writer made too little progress: ${acked.length} acks; ${stderr}`)), 30_000)
        child.stdout.on('data', (d: Buffer) => {
          buffer += d.toString()
          const lines = buffer.split('\n')
          buffer = lines.pop() as string
          for (const line of lines) if (line.startsWith('ack ')) acked.push(...line.slice(4).split(' '))
          // kill in the middle of the stream, while batches are still being written
          if (acked.length >= 25 * 40) {
            clearTimeout(timer)
            child.kill('SIGKILL')
            resolve()
          }
        })
        child.on('exit', () => { clearTimeout(timer); resolve() })
      })
      expect(await exited).toBe('SIGKILL')

      const spores = await Spores.open({ database: join(dir.path, 'db'), network: 'crash-net', rootPublicKey: getPublicKey(randomSecretKey()), signer: signerOf(randomSecretKey()) })
      try {
        expect(spores.droppedAtOpen).toBe(0)
        const held = new Set<string>()
        for await (const e of spores.tiers.latent.entries('service')) {
          expect(verifyEntrySignature(e)).toBe(true)
          held.add(e.key)
        }
        for (const key of acked) expect(held.has(key)).toBe(true)
        expect(held.size).toBeGreaterThanOrEqual(acked.length)
        // whatever landed beyond the acknowledged writes landed in whole batches
        expect((held.size - acked.length) % 25).toBe(0)
      } finally {
        await spores.close()
      }
    } finally {
      await dir.remove()
    }
  })
})
