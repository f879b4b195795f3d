import { readFileSync } from 'node:fs'

/** The board model from the device tree (set on every Raspberry Pi OS kernel), or null. */
export function raspberryPiModel (systemModel: string | null, deviceTreeModel = '/proc/device-tree/model'): string | null {
  let model: string | null = null
  try {
    model = readFileSync(deviceTreeModel, 'utf8').replace(/\0/g, '').trim()
  } catch {
    model = systemModel
  }
  return model !== null && /raspberry pi/i.test(model) ? model : null
}
