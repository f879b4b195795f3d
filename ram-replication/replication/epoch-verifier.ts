// With `verifyEpochs`: the primary's memory hash at each epoch against each backup's hash at the
// same applied epoch. Equal hashes prove the backup's copy is the guest's memory, byte for byte,
// at that epoch; a different one is logged and counted, never silently dropped.
import { toHex } from '../../crypto/index.ts'
import type { PrimaryReplication } from './primary-replication.ts'

const REMEMBERED_EPOCHS = 1024

export interface EpochVerdicts {
  equal: number
  different: number
  lastEqualEpoch: number
}

export function verifyEpochHashes (replication: PrimaryReplication, onDifferent: (backup: string, epoch: number) => void): EpochVerdicts {
  const verdicts: EpochVerdicts = { equal: 0, different: 0, lastEqualEpoch: 0 }
  const hashes = new Map<number, string>()
  replication.on('epoch', (epoch) => {
    if (epoch.memoryHash == null) return
    hashes.set(epoch.epoch, toHex(epoch.memoryHash))
    if (hashes.size > REMEMBERED_EPOCHS) hashes.delete(hashes.keys().next().value!)
  })
  replication.on('ack', (ack) => {
    const expected = hashes.get(ack.epoch)
    if (expected == null || ack.memoryHash == null) return
    if (expected === toHex(ack.memoryHash)) {
      verdicts.equal++
      verdicts.lastEqualEpoch = Math.max(verdicts.lastEqualEpoch, ack.epoch)
    } else {
      verdicts.different++
      onDifferent(ack.backup, ack.epoch)
    }
  })
  return verdicts
}
