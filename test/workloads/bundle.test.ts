// Signed application bundles (.spore files): what a node refuses when a bundle arrives from the
// network or an upload, what an author gets back for a mistake in a manifest or a directory,
// and what lands on disk when a bundle is unpacked. The attacks come first; a hostile publisher
// holds a valid key, so many of them are signed.
import { describe, it, expect, beforeEach, afterEach } from 'vitest'
import { mkdtemp, mkdir, writeFile, symlink, readFile, readdir, stat, truncate, cp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { decode as lenientDecode } from 'cborg'
import { join } from 'node:path'
import { encodeCanonical, decodeCanonical, sign, sha256, toHex, getPublicKey, peerIdOfPublicKey } from '../../crypto/index.ts'
import {
  packBundle, openBundle, bundleDigest, packDirectory, unpackBundle, parseManifest, entrypointFor,
  InvalidBundleError, InvalidManifestError, UnpackDirectoryNotEmptyError, MAX_BUNDLE_BYTES,
  type AppManifest, type BundleFile, type SignedBundle
} from '../../workloads/bundle/index.ts'

const text = (s: string): Uint8Array => new TextEncoder().encode(s)
const keyOf = (name: string): Uint8Array => sha256(text(`bundle-test/${name}`))
const publisher = keyOf('publisher')
const stranger = keyOf('stranger')
const SIGNED_AT = 1_760_000_000_000

const webManifest = (): AppManifest => parseManifest({ name: 'web', version: '1.0.0', kind: 'service', command: 'node', args: ['server.js'] })
const webFiles = (): BundleFile[] => [
  { path: 'server.js', bytes: text('require("http").createServer().listen(process.env.PORT)'), executable: false },
  { path: 'static/index.html', bytes: text('<h1>hi</h1>'), executable: false }
]
const small = (): Uint8Array => packBundle({ manifest: webManifest(), files: webFiles(), secretKey: publisher, grant: text('grant'), signedAt: SIGNED_AT })

/** A bundle signed by a valid key around any body at all: what a hostile publisher can send. */
function signedBody (body: Record<string, unknown>, secretKey = publisher): Uint8Array {
  const bytes = encodeCanonical(body)
  return encodeCanonical([bytes, sign(secretKey, bytes)])
}

/** The body of a well-formed bundle, to be altered and signed again. */
function bodyFields (bundle = small()): Record<string, unknown> {
  const [body] = decodeCanonical(bundle) as [Uint8Array, Uint8Array]
  return { ...(decodeCanonical(body) as Record<string, unknown>) }
}

const refused = (bytes: Uint8Array, message?: RegExp): void => {
  expect(() => openBundle(bytes)).toThrow(InvalidBundleError)
  if (message !== undefined) expect(() => openBundle(bytes)).toThrow(message)
}

describe('a bundle from the network', () => {
  it('is refused with one flipped byte, wherever it is', () => {
    const bytes = small()
    for (let offset = 0; offset < bytes.length; offset++) {
      for (const bit of [0x01, 0x80, 0xff]) {
        const changed = bytes.slice()
        changed[offset] ^= bit
        expect(() => openBundle(changed), `offset ${offset} ^ ${bit}`).toThrow(InvalidBundleError)
      }
    }
  })

  it('is refused cut short or with bytes after it', () => {
    const bytes = small()
    for (let length = 0; length < bytes.length; length++) expect(() => openBundle(bytes.subarray(0, length)), `length ${length}`).toThrow(InvalidBundleError)
    refused(new Uint8Array([...bytes, 0]))
  })

  it('signed again by another key names that key as its signer (whether it may publish is the caller\'s call)', () => {
    const original = openBundle(small())
    const resigned = openBundle(packBundle({ manifest: original.manifest, files: original.files, secretKey: stranger, grant: original.grant, signedAt: original.signedAt }))
    expect(resigned.signer).toBe(peerIdOfPublicKey(getPublicKey(stranger)))
    expect(resigned.signer).not.toBe(original.signer)
    expect(resigned.digest).not.toBe(original.digest)
  })

  it('with a signer key swapped in the body fails the signature', () => {
    refused(signedBody({ ...bodyFields(), signer: getPublicKey(stranger) }), /signature/)
  })

  it('with a path leading out of the bundle is refused, even when signed', () => {
    for (const path of ['../x', '/etc/x', 'a/../../x', './x', 'a/./x', 'a//x', 'a/', '', 'a\\..\\x', 'dir/ x', 'é', 'x'.repeat(256)]) {
      const files = [{ path, bytes: text('x'), executable: true }, { path: 'server.js', bytes: text(''), executable: false }].sort((a, b) => a.path < b.path ? -1 : 1)
      expect(() => openBundle(signedBody({ ...bodyFields(), files })), JSON.stringify(path)).toThrow(InvalidBundleError)
      expect(() => packBundle({ manifest: webManifest(), files, secretKey: publisher }), JSON.stringify(path)).toThrow(InvalidBundleError)
    }
  })

  it('holding a file twice, or a file that is also a directory, is refused', () => {
    const f = (path: string): BundleFile => ({ path, bytes: text(path), executable: false })
    refused(signedBody({ ...bodyFields(), files: [f('a'), f('a'), f('server.js')] }), /twice/)
    refused(signedBody({ ...bodyFields(), files: [f('a'), f('a/b'), f('server.js')] }), /both a file and the directory/)
    expect(() => packBundle({ manifest: webManifest(), files: [f('lib'), f('lib/x.js'), f('server.js')], secretKey: publisher })).toThrow(/both a file and the directory/)
  })

  it('in another encoding of the same value is refused, even when the signature is valid', () => {
    const bytes = small()
    // the [body, signature] array's length in the longer one-byte form
    refused(new Uint8Array([0x98, 0x02, ...bytes.subarray(1)]), /canonical/)
    // the ctx string's length in the longer form, inside a body that is then properly signed
    const [body] = decodeCanonical(bytes) as [Uint8Array]
    const ctx = encodeCanonical('mycelium-bundle-v1')
    const offset = indexOf(body, ctx)
    const longer = new Uint8Array([...body.subarray(0, offset), 0x78, ctx.length - 1, ...body.subarray(offset + 1)])
    // a lenient decoder reads the same value from both
    expect(lenientDecode(longer)).toEqual(lenientDecode(body))
    refused(encodeCanonical([longer, sign(publisher, longer)]), /canonical/)
    // files out of path order, and a manifest without its defaults written out
    refused(signedBody({ ...bodyFields(), files: [...webFiles()].reverse() }), /path order/)
    refused(signedBody({ ...bodyFields(), manifest: { name: 'web', version: '1.0.0', kind: 'service', command: 'node', args: ['server.js'] } }), /complete form/)
  })

  it('declaring a huge length is refused without allocating it, and an oversize bundle before decoding', () => {
    refused(new Uint8Array([0x82, 0x5a, 0xff, 0xff, 0xff, 0xff, 0x00]))
    refused(new Uint8Array([0x82, 0x5b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00]))
    refused(new Uint8Array([0x9a, 0xff, 0xff, 0xff, 0xff, 0x00]))
    const bytes = small()
    expect(() => openBundle(bytes, { maxBytes: bytes.length - 1 })).toThrow(/more than the/)
    expect(openBundle(bytes, { maxBytes: bytes.length }).digest).toBe(bundleDigest(bytes))
    expect(() => openBundle(new Uint8Array(MAX_BUNDLE_BYTES + 1))).toThrow(/more than the/)
  })

  it('with an unknown field, in the body or in the manifest, is refused', () => {
    refused(signedBody({ ...bodyFields(), owner: 'me' }), /unknown field "owner"/)
    const manifest = { ...(bodyFields().manifest as Record<string, unknown>), privileged: true }
    refused(signedBody({ ...bodyFields(), manifest }), /unknown field "privileged"/)
  })

  it('of another kind of signed message, or another version, is refused', () => {
    refused(signedBody({ ...bodyFields(), ctx: 'mycelium-membership-v1' }), /not a Mycelium application bundle/)
    refused(encodeCanonical([encodeCanonical({ a: 1 }), new Uint8Array(64)]))
    refused(encodeCanonical({ body: new Uint8Array(1), sig: new Uint8Array(64) }), /\[body, signature\]/)
  })

  it('naming a file it does not hold is refused', () => {
    const manifestWith = (fields: Record<string, unknown>): AppManifest => parseManifest({ name: 'x', version: '1', ...fields })
    const cases: Array<[AppManifest, BundleFile[], RegExp]> = [
      [manifestWith({ kind: 'service', command: 'bin/app' }), [], /command "bin\/app" is not a file/],
      [manifestWith({ kind: 'job', wasm: 'job.wasm' }), [], /wasm "job.wasm" is not a file/],
      [manifestWith({ kind: 'service', binaries: { x86_64: 'bin/app' } }), [], /binaries.x86_64 "bin\/app" is not a file/],
      [manifestWith({ kind: 'service', binaries: { x86_64: 'bin/app' } }), [{ path: 'bin/app', bytes: text('x'), executable: false }], /not marked executable/]
    ]
    for (const [manifest, files, message] of cases) {
      expect(() => packBundle({ manifest, files, secretKey: publisher })).toThrow(message)
      refused(signedBody({ ...bodyFields(), manifest, files }), message)
    }
  })
})

describe('a bundle that opens', () => {
  it('gives back its manifest, files, signer, grant and digest', () => {
    const bytes = small()
    const bundle = openBundle(bytes)
    expect(bundle.digest).toBe(toHex(sha256(bytes)))
    expect(bundle.manifest).toEqual(webManifest())
    expect(bundle.files.map(f => f.path)).toEqual(['server.js', 'static/index.html'])
    expect(bundle.files[0].bytes).toEqual(webFiles()[0].bytes)
    expect(bundle.signerPublicKey).toEqual(getPublicKey(publisher))
    expect(bundle.signer).toBe(peerIdOfPublicKey(getPublicKey(publisher)))
    expect(bundle.grant).toEqual(text('grant'))
    expect(bundle.signedAt).toBe(SIGNED_AT)
  })

  it('packs the same whatever order its files were given in', () => {
    const reversed = packBundle({ manifest: webManifest(), files: webFiles().reverse(), secretKey: publisher, grant: text('grant'), signedAt: SIGNED_AT })
    expect(reversed).toEqual(small())
  })

  it('without a grant has none', () => {
    expect(openBundle(packBundle({ manifest: webManifest(), files: webFiles(), secretKey: publisher })).grant).toBeUndefined()
  })
})

describe('a manifest', () => {
  const valid = { name: 'web', version: '1.0.0', kind: 'service', command: 'node' }

  it('gets its defaults filled in, from JSON or from decoded CBOR alike', () => {
    const expected = { ...valid, resources: { cpuMillis: 500, memoryMb: 128 }, placement: { roles: ['sclerotium', 'rhizomorph'], arch: 'any', labels: {} } }
    expect(parseManifest(JSON.parse(JSON.stringify(valid)))).toEqual(expected)
    expect(parseManifest(decodeCanonical(encodeCanonical(valid)))).toEqual(expected)
    expect(parseManifest({ ...valid, resources: { memoryMb: 512 } }).resources).toEqual({ cpuMillis: 500, memoryMb: 512 })
  })

  it('is refused with the field named', () => {
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ helth: { http: '/' } }, /unknown field "helth"/],
      [{ resources: { cpuMillis: 100, gpus: 1 } }, /resources has an unknown field "gpus"/],
      [{ name: 'My App' }, /^name must be/],
      [{ name: 'a'.repeat(49) }, /^name must be/],
      [{ version: '' }, /^version must be/],
      [{ version: '1.0 beta' }, /^version must be/],
      [{ kind: 'daemon' }, /^kind must be one of service, job/],
      [{ command: undefined }, /a service needs command/],
      [{ command: '../bin/sh' }, /^command "..\/bin\/sh" has a '..' component/],
      [{ command: './server.js' }, /^command/],
      [{ args: ['a\u0000b'] }, /^args\[0\]/],
      [{ args: Array(65).fill('a') }, /^args must be/],
      [{ args: ['x'.repeat(1025)] }, /^args\[0\]/],
      [{ env: { PORT: '80' } }, /env.PORT is reserved/],
      [{ env: { 'lower': 'x' } }, /^env name "lower"/],
      [{ env: { A: 'x'.repeat(4097) } }, /^env.A must be/],
      [{ env: Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`V${i}`, ''])) }, /^env has 65 variables/],
      [{ resources: { cpuMillis: 0 } }, /^resources.cpuMillis must be an integer from 1 to 64000, got 0/],
      [{ resources: { cpuMillis: 1.5 } }, /^resources.cpuMillis/],
      [{ resources: { memoryMb: 65537 } }, /^resources.memoryMb/],
      [{ resources: [500, 128] }, /^resources must be an object/],
      [{ health: { http: 'healthz' } }, /^health.http must be/],
      [{ health: { http: '/a b' } }, /^health.http must be/],
      [{ placement: { roles: ['bridge'] } }, /^placement.roles\[0\] must be one of/],
      [{ placement: { roles: [] } }, /^placement.roles must be/],
      [{ placement: { roles: ['hyphae', 'hyphae'] } }, /^placement.roles lists "hyphae" twice/],
      [{ placement: { arch: ['riscv64'] } }, /^placement.arch\[0\]/],
      [{ placement: { labels: { '': 'x' } } }, /^placement.labels key ""/],
      [{ placement: { labels: { zone: 7 } } }, /^placement.labels.zone/],
      [{ wasm: 'x.wasm' }, /wasm is for jobs/],
      [{ binaries: {} }, /^binaries must name an executable/],
      [{ binaries: { riscv64: 'bin/x' } }, /^binaries has an unknown field "riscv64"/]
    ]
    for (const [change, message] of cases) {
      const raw = { ...valid, ...change }
      expect(() => parseManifest(raw), JSON.stringify(change)).toThrow(InvalidManifestError)
      expect(() => parseManifest(raw), JSON.stringify(change)).toThrow(message)
    }
    expect(() => parseManifest(JSON.parse('{"name":"web","version":"1","kind":"service","command":"node","__proto__":{"x":1}}'))).toThrow(/unknown field "__proto__"/)
    for (const notAnObject of [null, [], 'web', 7, new Uint8Array(2)]) expect(() => parseManifest(notAnObject)).toThrow(/^manifest must be an object/)
  })

  it('of a job needs wasm, and of a service a command or binaries', () => {
    expect(() => parseManifest({ name: 'j', version: '1', kind: 'job' })).toThrow(/a job needs wasm/)
    expect(() => parseManifest({ name: 'j', version: '1', kind: 'job', wasm: 'j.wasm', command: 'node' })).toThrow(/a job runs its wasm module/)
    expect(() => parseManifest({ name: 'j', version: '1', kind: 'job', wasm: 'j.js' })).toThrow(/must name a .wasm file/)
    expect(() => parseManifest({ name: 's', version: '1', kind: 'service' })).toThrow(/a service needs command/)
    expect(parseManifest({ name: 'j', version: '1', kind: 'job', wasm: 'lib/j.wasm' }).placement.arch).toBe('any')
  })

  it('with only binaries is placed where it has one, and may not ask for more', () => {
    const native = { name: 'n', version: '1', kind: 'service', binaries: { aarch64: 'bin/n' } }
    expect(parseManifest(native).placement.arch).toEqual(['aarch64'])
    expect(parseManifest({ ...native, binaries: { x86_64: 'a', aarch64: 'b' } }).placement.arch).toEqual(['x86_64', 'aarch64'])
    expect(() => parseManifest({ ...native, placement: { arch: 'any' } })).toThrow(/placement.arch includes x86_64 but binaries has no executable/)
    expect(() => parseManifest({ ...native, placement: { arch: ['x86_64'] } })).toThrow(/includes x86_64/)
    expect(parseManifest({ ...native, command: 'node' }).placement.arch).toBe('any')
  })
})

describe('the entry point on an architecture', () => {
  it('is the binary for it, else the command, else nothing', () => {
    const both = parseManifest({ name: 'n', version: '1', kind: 'service', command: 'server.js', args: ['-v'], binaries: { aarch64: 'bin/n-arm' } })
    expect(entrypointFor(both, 'aarch64')).toEqual({ command: 'bin/n-arm', args: ['-v'] })
    expect(entrypointFor(both, 'x86_64')).toEqual({ command: 'server.js', args: ['-v'] })
    const native = parseManifest({ name: 'n', version: '1', kind: 'service', binaries: { aarch64: 'bin/n-arm' } })
    expect(entrypointFor(native, 'x86_64')).toBeUndefined()
    expect(entrypointFor(native, 'aarch64')).toEqual({ command: 'bin/n-arm', args: [] })
    const placed = parseManifest({ name: 'n', version: '1', kind: 'service', command: 'node', placement: { arch: ['x86_64'] } })
    expect(entrypointFor(placed, 'aarch64')).toBeUndefined()
    expect(entrypointFor(parseManifest({ name: 'j', version: '1', kind: 'job', wasm: 'j.wasm' }), 'x86_64')).toBeUndefined()
  })
})

describe('an author\'s directory', () => {
  let scratch: string
  let dir: string
  beforeEach(async () => {
    scratch = await mkdtemp(join(tmpdir(), 'myc-bundle-'))
    dir = join(scratch, 'app')
    await mkdir(join(dir, 'bin'), { recursive: true })
    await mkdir(join(dir, 'static', 'css'), { recursive: true })
    await writeFile(join(dir, 'manifest.json'), JSON.stringify({ name: 'web', version: '2.0.0', kind: 'service', command: 'node', args: ['server.js'], binaries: { x86_64: 'bin/web' } }))
    await writeFile(join(dir, 'server.js'), 'console.log("up")')
    await writeFile(join(dir, 'bin', 'web'), '#!/bin/sh\necho up\n', { mode: 0o755 })
    await writeFile(join(dir, 'static', 'css', 'a.css'), 'h1 {}')
    await writeFile(join(dir, '.env-example'), 'A=1')
  })
  afterEach(async () => { await rm(scratch, { recursive: true, force: true }) })

  it('packs every file but the manifest, with its executable bit, into a bundle that opens', async () => {
    const packed = await packDirectory(dir, { secretKey: publisher, signedAt: SIGNED_AT })
    expect(packed.digest).toBe(bundleDigest(packed.bytes))
    expect(packed.manifest.name).toBe('web')
    const bundle = openBundle(packed.bytes)
    expect(bundle.files.map(f => [f.path, f.executable])).toEqual([['.env-example', false], ['bin/web', true], ['server.js', false], ['static/css/a.css', false]])
    expect(bundle.manifest).toEqual(packed.manifest)
  })

  it('packs to the same bytes and digest every time, wherever it is', async () => {
    const first = await packDirectory(dir, { secretKey: publisher, signedAt: SIGNED_AT })
    const again = await packDirectory(dir, { secretKey: publisher, signedAt: SIGNED_AT })
    await cp(dir, join(scratch, 'copy'), { recursive: true })
    const copy = await packDirectory(join(scratch, 'copy'), { secretKey: publisher, signedAt: SIGNED_AT })
    expect(again.bytes).toEqual(first.bytes)
    expect(copy.bytes).toEqual(first.bytes)
    expect(copy.digest).toBe(first.digest)
  })

  it('with a symlink pointing outside it is refused; one inside brings its target\'s bytes', async () => {
    await writeFile(join(scratch, 'secret'), 'key material')
    await symlink(join(scratch, 'secret'), join(dir, 'static', 'leak'))
    await expect(packDirectory(dir, { secretKey: publisher })).rejects.toThrow(/symlink pointing outside/)
    await rm(join(dir, 'static', 'leak'))
    await symlink('../../secret', join(dir, 'static', 'leak'))
    await expect(packDirectory(dir, { secretKey: publisher })).rejects.toThrow(/static\/leak: a symlink pointing outside/)
    await rm(join(dir, 'static', 'leak'))
    await symlink('../server.js', join(dir, 'static', 'server-link.js'))
    const bundle = openBundle((await packDirectory(dir, { secretKey: publisher })).bytes)
    expect(bundle.files.find(f => f.path === 'static/server-link.js')?.bytes).toEqual(text('console.log("up")'))
  })

  it('with a symlink to a directory, to nothing, or a name a bundle cannot carry is refused with the path', async () => {
    await symlink('static', join(dir, 'assets'))
    await expect(packDirectory(dir, { secretKey: publisher })).rejects.toThrow(/assets: a symlink to a directory/)
    await rm(join(dir, 'assets'))
    await symlink('missing', join(dir, 'dangling'))
    await expect(packDirectory(dir, { secretKey: publisher })).rejects.toThrow(/dangling: a symlink to nothing/)
    await rm(join(dir, 'dangling'))
    await writeFile(join(dir, 'read me.txt'), '')
    await expect(packDirectory(dir, { secretKey: publisher })).rejects.toThrow(/read me\.txt: a bundle path has characters outside/)
  })

  it('larger than a bundle may be is refused before its files are read', async () => {
    // sparse: no disk used, and reading it would take seconds
    await writeFile(join(dir, 'huge.bin'), '')
    await truncate(join(dir, 'huge.bin'), MAX_BUNDLE_BYTES + 1)
    await expect(packDirectory(dir, { secretKey: publisher })).rejects.toThrow(/larger than the/)
  })

  it('with a broken manifest is refused, naming manifest.json', async () => {
    await writeFile(join(dir, 'manifest.json'), '{"name": "web",')
    await expect(packDirectory(dir, { secretKey: publisher })).rejects.toThrow(InvalidManifestError)
    await expect(packDirectory(dir, { secretKey: publisher })).rejects.toThrow(/manifest\.json: not valid JSON/)
    await writeFile(join(dir, 'manifest.json'), JSON.stringify({ name: 'web', version: '1', kind: 'job' }))
    await expect(packDirectory(dir, { secretKey: publisher })).rejects.toThrow(/manifest\.json: a job needs wasm/)
    await rm(join(dir, 'manifest.json'))
    await expect(packDirectory(dir, { secretKey: publisher })).rejects.toThrow(/manifest\.json: not found/)
  })

  it('unpacks as it was packed, with modes 755 and 644', async () => {
    const bundle = openBundle((await packDirectory(dir, { secretKey: publisher })).bytes)
    const out = join(scratch, 'out')
    await unpackBundle(bundle, out)
    expect((await readdir(out)).sort()).toEqual(['.env-example', 'bin', 'server.js', 'static'])
    expect(await readFile(join(out, 'static', 'css', 'a.css'), 'utf8')).toBe('h1 {}')
    expect((await stat(join(out, 'bin', 'web'))).mode & 0o777).toBe(0o755)
    expect((await stat(join(out, 'server.js'))).mode & 0o777).toBe(0o644)
  })
})

describe('unpacking', () => {
  let scratch: string
  beforeEach(async () => { scratch = await mkdtemp(join(tmpdir(), 'myc-unpack-')) })
  afterEach(async () => { await rm(scratch, { recursive: true, force: true }) })

  const handMade = (files: BundleFile[]): SignedBundle => ({ ...openBundle(small()), files })

  it('refuses a path out of the directory and writes nothing', async () => {
    for (const path of ['../x', '/etc/x', 'a/../../x', '..', 'a/./b', 'a//b']) {
      const out = join(scratch, 'out')
      await expect(unpackBundle(handMade([{ path: 'ok.txt', bytes: text('ok'), executable: false }, { path, bytes: text('x'), executable: true }]), out), path).rejects.toThrow(InvalidBundleError)
      await expect(readdir(out)).rejects.toThrow(/ENOENT/)
    }
    expect(await readdir(scratch)).toEqual([])
  })

  it('refuses a directory that already holds something', async () => {
    const out = join(scratch, 'out')
    await mkdir(out)
    await symlink('/tmp', join(out, 'server.js'))
    await expect(unpackBundle(openBundle(small()), out)).rejects.toThrow(UnpackDirectoryNotEmptyError)
  })

  it('makes files executable only when marked, whatever the umask', async () => {
    const previous = process.umask(0o077)
    try {
      await unpackBundle(handMade([{ path: 'run', bytes: text('#!/bin/sh'), executable: true }]), join(scratch, 'out'))
    } finally {
      process.umask(previous)
    }
    expect((await stat(join(scratch, 'out', 'run'))).mode & 0o777).toBe(0o755)
  })
})

function indexOf (haystack: Uint8Array, needle: Uint8Array): number {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer
    return i
  }
  return -1
}
