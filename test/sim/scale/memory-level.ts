// An in-memory level for the simulated nodes: the spores' real SporeDatabase, sublevels and
// TierStores run over it unchanged. Keys are the root's prefixed strings, values byte views;
// an iterator works on a sorted copy of the keys taken when it opens (the stores read only at
// load, when the database is empty, and by key).
import { AbstractLevel, AbstractIterator } from 'abstract-level'

type Key = string
type Value = Uint8Array

interface Range { gt?: Key, gte?: Key, lt?: Key, lte?: Key, reverse?: boolean, limit?: number, keys?: boolean, values?: boolean }

class MemoryIterator extends AbstractIterator<MemoryLevel, Key, Value> {
  private readonly rows: Array<[Key, Value]>
  private at = 0

  constructor (db: MemoryLevel, options: Range, data: Map<Key, Value>) {
    super(db, options as any)
    const keys = [...data.keys()].filter(k => (options.gt === undefined || k > options.gt) && (options.gte === undefined || k >= options.gte) && (options.lt === undefined || k < options.lt) && (options.lte === undefined || k <= options.lte)).sort()
    if (options.reverse === true) keys.reverse()
    const limit = options.limit === undefined || options.limit < 0 ? Infinity : options.limit
    this.rows = keys.slice(0, limit).map(k => [k, data.get(k) as Value])
  }

  async _next (): Promise<[Key, Value] | undefined> {
    return this.rows[this.at++]
  }
}

export class MemoryLevel extends AbstractLevel<Key, Value> {
  private readonly data = new Map<Key, Value>()

  constructor () {
    super({ encodings: { utf8: true, view: true }, permanence: false, snapshots: false }, { keyEncoding: 'utf8', valueEncoding: 'view' })
  }

  async _get (key: Key): Promise<Value | undefined> {
    return this.data.get(key)
  }

  async _getMany (keys: Key[]): Promise<Array<Value | undefined>> {
    return keys.map(k => this.data.get(k))
  }

  async _put (key: Key, value: Value): Promise<void> {
    this.data.set(key, value)
  }

  async _del (key: Key): Promise<void> {
    this.data.delete(key)
  }

  async _batch (operations: Array<{ type: 'put' | 'del', key: Key, value?: Value }>): Promise<void> {
    for (const op of operations) {
      if (op.type === 'put') this.data.set(op.key, op.value as Value)
      else this.data.delete(op.key)
    }
  }

  async _clear (): Promise<void> {
    this.data.clear()
  }

  _iterator (options: Range): MemoryIterator {
    return new MemoryIterator(this, options, this.data)
  }
}
