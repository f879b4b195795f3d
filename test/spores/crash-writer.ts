// Child process of the crash-safety test: merges batches of fresh entries into a spore
// database and prints "ack <key> <key>…" after each batch is acknowledged, until killed.
import { join } from 'node:path'
import { randomSecretKey, getPublicKey } from '../../crypto/index.ts'
import { Spores, signEntry, signerOf } from '../../spores/index.ts'

const dir = process.argv[2]
const rootKey = getPublicKey(randomSecretKey())
const spores = await Spores.open({ database: join(dir, 'db'), network: 'crash-net', rootPublicKey: rootKey, signer: signerOf(randomSecretKey()) })
const signers = Array.from({ length: 64 }, () => signerOf(randomSecretKey()))
for (let batch = 0; batch < 100_000; batch++) {
  const entries = Array.from({ length: 25 }, (_, i) => {
    const s = signers[(batch * 25 + i) % signers.length]
    return signEntry(s, { type: 'service', key: `${s.peerId}/svc-${batch}-${i}`, value: { name: `svc-${batch}-${i}`, endpoints: ['/ip4/127.0.0.1/tcp/9000'], protocol: 'x'.repeat(100) }, seq: 1, issuedAt: Date.now() })
  })
  const outcomes = await spores.merge('latent', entries.map(e => e.bytes))
  if (outcomes.some(o => o.status !== 'merged')) throw new Error('crash writer: an entry was not merged')
  process.stdout.write(`ack ${entries.map(e => e.key).join(' ')}\n`)
}
