// WebAssembly modules written byte by byte (no toolchain is needed), for the WASI job tests:
// one that says hello and exits 3, one that never returns, one that asks for more memory, one
// that returns without proc_exit.

// --- the WebAssembly binary format, as much of it as these modules use ---

function uleb (n: number): number[] {
  const out: number[] = []
  do {
    let byte = n & 0x7f
    n >>>= 7
    if (n !== 0) byte |= 0x80
    out.push(byte)
  } while (n !== 0)
  return out
}

function sleb (n: number): number[] {
  const out: number[] = []
  for (;;) {
    const byte = n & 0x7f
    n >>= 7
    const done = (n === 0 && (byte & 0x40) === 0) || (n === -1 && (byte & 0x40) !== 0)
    out.push(done ? byte : byte | 0x80)
    if (done) return out
  }
}

const name = (s: string): number[] => [...uleb(s.length), ...Buffer.from(s, 'utf8')]
const vec = (items: number[][]): number[] => [...uleb(items.length), ...items.flat()]
const section = (id: number, content: number[]): number[] => [id, ...uleb(content.length), ...content]

const I32 = 0x7f
const FUNC = 0x00
const MEMORY = 0x02
const op = {
  end: 0x0b,
  loop: 0x03,
  br: 0x0c,
  call: 0x10,
  drop: 0x1a,
  i32Const: (n: number) => [0x41, ...sleb(n)],
  i32Eq: 0x46,
  memoryGrow: [0x40, 0x00]
}

interface ModuleShape {
  types: Array<{ params: number[], results: number[] }>
  /** wasi_snapshot_preview1 functions: name and type index */
  imports: Array<[string, number]>
  /** type index of each defined function */
  functions: number[]
  memoryPages: number
  exports: Array<[string, number, number]>
  /** each defined function's instructions (without locals or the final end) */
  code: number[][]
  data?: { offset: number, bytes: number[] }
}

function wasmModule (m: ModuleShape): Uint8Array {
  const bytes = [
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vec(m.types.map(t => [0x60, ...vec(t.params.map(p => [p])), ...vec(t.results.map(r => [r]))]))),
    ...(m.imports.length > 0 ? section(2, vec(m.imports.map(([fn, type]) => [...name('wasi_snapshot_preview1'), ...name(fn), FUNC, ...uleb(type)]))) : []),
    ...section(3, vec(m.functions.map(t => uleb(t)))),
    ...section(5, vec([[0x00, ...uleb(m.memoryPages)]])),
    ...section(7, vec(m.exports.map(([n, kind, index]) => [...name(n), kind, ...uleb(index)]))),
    ...section(10, vec(m.code.map(body => { const b = [0x00, ...body, op.end]; return [...uleb(b.length), ...b] }))),
    ...(m.data !== undefined ? section(11, vec([[0x00, ...op.i32Const(m.data.offset), op.end, ...uleb(m.data.bytes.length), ...m.data.bytes]])) : [])
  ]
  return Uint8Array.from(bytes)
}

const le32 = (n: number): number[] => [n & 0xff, (n >> 8) & 0xff, (n >> 16) & 0xff, (n >>> 24) & 0xff]

/** fd_write(1, iovec at 0 → "hello\n" at 8), then proc_exit(3). */
export function helloModule (): Uint8Array {
  const text = [...Buffer.from('hello\n')]
  return wasmModule({
    types: [{ params: [I32, I32, I32, I32], results: [I32] }, { params: [I32], results: [] }, { params: [], results: [] }],
    imports: [['fd_write', 0], ['proc_exit', 1]],
    functions: [2],
    memoryPages: 1,
    exports: [['memory', MEMORY, 0], ['_start', FUNC, 2]],
    code: [[...op.i32Const(1), ...op.i32Const(0), ...op.i32Const(1), ...op.i32Const(64), op.call, 0, op.drop, ...op.i32Const(3), op.call, 1]],
    data: { offset: 0, bytes: [...le32(8), ...le32(text.length), ...text] }
  })
}

/** _start: loop { br 0 } */
export function spinningModule (): Uint8Array {
  return wasmModule({
    types: [{ params: [], results: [] }],
    imports: [],
    functions: [0],
    memoryPages: 1,
    exports: [['memory', MEMORY, 0], ['_start', FUNC, 0]],
    code: [[op.loop, 0x40, op.br, 0, op.end]]
  })
}

/** proc_exit(memory.grow(64 pages = 4 MiB) == -1): exits 1 when refused the memory. */
export function growingModule (): Uint8Array {
  return wasmModule({
    types: [{ params: [I32], results: [] }, { params: [], results: [] }],
    imports: [['proc_exit', 0]],
    functions: [1],
    memoryPages: 1,
    exports: [['memory', MEMORY, 0], ['_start', FUNC, 1]],
    code: [[...op.i32Const(64), ...op.memoryGrow, ...op.i32Const(-1), op.i32Eq, op.call, 0]]
  })
}

/** _start returns without calling proc_exit. */
export function returningModule (exportStart = true): Uint8Array {
  return wasmModule({
    types: [{ params: [], results: [] }],
    imports: [],
    functions: [0],
    memoryPages: 1,
    exports: exportStart ? [['memory', MEMORY, 0], ['_start', FUNC, 0]] : [['memory', MEMORY, 0]],
    code: [[]]
  })
}
