// Exactly the guest-physical pages the guest's stores touched since the last collection: one
// bit per page, set on every store the interpreter performs (and by the page walker when it sets
// an accessed or dirty bit, as the hardware walker writes the page table too).

export class DirtyLog {
  readonly pages: number
  private readonly bits: Int32Array

  constructor (pages: number) {
    this.pages = pages
    this.bits = new Int32Array(Math.ceil(pages / 32))
  }

  mark (page: number): void {
    this.bits[page >>> 5] |= 1 << (page & 31)
  }

  /** Page numbers written since the previous collect, ascending; the log starts afresh. */
  collect (): number[] {
    const pages: number[] = []
    const bits = this.bits
    for (let word = 0; word < bits.length; word++) {
      let value = bits[word]
      if (value === 0) continue
      bits[word] = 0
      while (value !== 0) {
        const low = value & -value
        pages.push(word * 32 + 31 - Math.clz32(low))
        value ^= low
      }
    }
    return pages
  }
}
