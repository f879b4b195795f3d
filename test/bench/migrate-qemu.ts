// npm run bench:migrate-qemu — live migration side by side: QEMU migrating the project's own
// page-writer guest (built as a multiboot kernel, qemu/multiboot-image.ts) and Mycelium migrating
// the same guest, same pattern (`full`: whole 4 KiB pages of incompressible data), same memory
// (256 MiB), at the same dirty rate, on loopback in one run. One table:
//   pages/s     what the guest really wrote in the second before the migration (its own counter)
//   total ms    QEMU: `query-migrate` total-time (the bulk copy of all memory included);
//               Mycelium: migrate() to the target's word that the guest runs there (the VM is
//               replicated all along, so the bulk copy was done before: that is the design)
//   downtime    QEMU: its own `downtime` figure; Mycelium: guest paused at the source → running
//               at the target
//   MB          QEMU: ram transferred; Mycelium: encoded bytes of the converge rounds and the
//               handover epoch
// QEMU runs with its defaults (downtime-limit 300 ms) plus auto-converge and unlimited bandwidth,
// over 1 channel and over multifd with 4; Mycelium over 1 and 4 direct sealed links, its default
// converge size, the KVM engine where /dev/kvm opens (else the interpreter).
//
// Where hardware virtualization is present QEMU runs its guest under KVM at full speed. Where it
// is not (PVM or no /dev/kvm: QEMU cannot use PVM), QEMU emulates the vCPU (TCG) and is paced
// with `-icount shift=N,align=on` (virtual time kept to real time): N = 6, 5, 4 give about 1, 3
// and 6 thousand pages/s here. Mycelium's guest is paced to the rate QEMU's guest really wrote.
// Every QEMU is killed at the end of its row; every wait has a timeout.
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Libp2p } from 'libp2p'
import {
  PrimaryReplication, ReplicaHost, allocateGuestMemory, defaultEngine, guestRestorer, startGuest
} from '../../ram-replication/index.ts'
import type { RunningGuest } from '../../ram-replication/index.ts'
import { connect, secretKeyOf, startReplicationNode, stopAll } from '../ram-replication/mesh.ts'
import { multibootPageWriter } from './qemu/multiboot-image.ts'
import { Qmp } from './qemu/qmp.ts'

const QEMU = '/usr/bin/qemu-system-x86_64'
const MEMORY_MB = 256
const SHIFTS = (process.env.BENCH_QEMU_SHIFTS ?? '6,5,4').split(',').map(Number)
const PREFIX = '/mycelium/bench-migrate'
const MIGRATION_TIMEOUT_MS = 120_000
const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }

function hardwareVirtualization (): boolean {
  if (!existsSync('/dev/kvm')) return false
  return /\b(vmx|svm)\b/.test(readFileSync('/proc/cpuinfo', 'utf8'))
}

interface Row { who: string, pagesPerS: number, totalMs: number, downtimeMs: number, mb: number, note?: string }

class QemuVm {
  readonly process: ChildProcess
  readonly qmp: Qmp
  private constructor (child: ChildProcess, qmp: Qmp) {
    this.process = child
    this.qmp = qmp
  }

  static async start (dir: string, name: string, kernel: string, accel: string[], incoming?: string): Promise<QemuVm> {
    const socket = join(dir, `${name}.qmp`)
    const child = spawn(QEMU, [...accel, '-m', String(MEMORY_MB), '-kernel', kernel, '-display', 'none', '-no-reboot', '-serial', 'none',
      '-qmp', `unix:${socket},server=on,wait=off`, ...(incoming === undefined ? [] : ['-incoming', incoming])], { stdio: ['ignore', 'ignore', 'pipe'] })
    let stderr = ''
    child.stderr?.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
    try {
      return new QemuVm(child, await Qmp.connect(socket))
    } catch (error) {
      child.kill('SIGKILL')
      throw new Error(`QEMU did not start: ${(error as Error).message} ${stderr.trim()}`)
    }
  }

  async counter (): Promise<number> {
    const match = /: (0x[0-9a-f]+) (0x[0-9a-f]+)/.exec(await this.qmp.hmp('xp /2wx 0x1040'))
    if (match == null) throw new Error('could not read the guest counter')
    return Number(match[1]) + Number(match[2]) * 2 ** 32
  }

  stop (): void {
    this.qmp.close()
    this.process.kill('SIGKILL')
  }
}

async function rateOf (read: () => Promise<number> | number): Promise<number> {
  const before = await read()
  const startedAt = performance.now()
  await sleep(1000)
  return (await read() - before) / ((performance.now() - startedAt) / 1000)
}

let nextPort = 47310

async function qemuRow (dir: string, kernel: string, accel: string[], channels: number): Promise<Row> {
  const port = nextPort++
  const uri = `tcp:127.0.0.1:${port}`
  const target = await QemuVm.start(dir, `target${port}`, kernel, accel, uri)
  const source = await QemuVm.start(dir, `source${port}`, kernel, accel)
  try {
    await sleep(500)
    const pagesPerS = await rateOf(async () => await source.counter())
    const capabilities = [{ capability: 'auto-converge', state: true }, ...(channels > 1 ? [{ capability: 'multifd', state: true }] : [])]
    for (const vm of [source, target]) {
      await vm.qmp.execute('migrate-set-capabilities', { capabilities })
      if (channels > 1) await vm.qmp.execute('migrate-set-parameters', { 'multifd-channels': channels })
    }
    await source.qmp.execute('migrate-set-parameters', { 'max-bandwidth': 10_000_000_000 })
    await source.qmp.execute('migrate', { uri })
    const deadline = Date.now() + MIGRATION_TIMEOUT_MS
    let info: Record<string, any> = {}
    while (Date.now() < deadline) {
      info = await source.qmp.execute<Record<string, any>>('query-migrate')
      if (info.status === 'completed' || info.status === 'failed') break
      await sleep(20)
    }
    if (info.status !== 'completed') return { who: `QEMU ${channels === 1 ? '1 channel' : `multifd ${channels}`}`, pagesPerS, totalMs: NaN, downtimeMs: NaN, mb: NaN, note: `migration ${String(info.status)}` }
    // The guest runs on at the target.
    const atTarget = await target.counter()
    await sleep(200)
    const runs = await target.counter() > atTarget
    return {
      who: `QEMU ${channels === 1 ? '1 channel' : `multifd ${channels}`}`,
      pagesPerS,
      totalMs: info['total-time'],
      downtimeMs: info.downtime,
      mb: info.ram.transferred / 1e6,
      note: runs ? undefined : 'the guest does not run at the target'
    }
  } finally {
    source.stop()
    target.stop()
  }
}

interface Mesh { primary: Libp2p, backup: Libp2p, host: ReplicaHost, resumed: RunningGuest[] }

async function myceliumRow (mesh: Mesh, links: number, rate: number): Promise<Row> {
  const engine = defaultEngine()
  const guest = await startGuest(engine, { memoryBytes: MEMORY_MB << 20, workload: { pattern: 'full', dirtyRate: Math.max(1, Math.round(rate)) } })
  const replication = new PrimaryReplication({
    node: mesh.primary,
    protocolPrefix: PREFIX,
    guest,
    secretKey: secretKeyOf(mesh.primary),
    backups: [{ peerId: mesh.backup.peerId.toString(), via: new Array(links).fill(undefined) }],
    epochIntervalMs: 10
  })
  const who = `Mycelium ${links} link${links > 1 ? 's' : ''} (${engine})`
  try {
    await replication.start()
    await replication.initialSync({ signal: AbortSignal.timeout(MIGRATION_TIMEOUT_MS) })
    const pagesPerS = await rateOf(() => guest.guestCounter())
    const report = await replication.migrate(mesh.backup.peerId.toString(), { signal: AbortSignal.timeout(MIGRATION_TIMEOUT_MS) })
    const moved = mesh.resumed.find(other => other.vmId === guest.vmId)
    const runs = moved != null && await moved.waitForCounter(report.guestCounter + 1, { signal: AbortSignal.timeout(5000) }).then(() => true, () => false)
    return { who, pagesPerS, totalMs: report.totalMs, downtimeMs: report.downtimeMs, mb: report.bytes / 1e6, note: runs ? undefined : 'the guest does not run at the target' }
  } catch (error) {
    return { who, pagesPerS: NaN, totalMs: NaN, downtimeMs: NaN, mb: NaN, note: `not migrated: ${(error as Error).message}` }
  } finally {
    if (replication.state !== 'migrated') await replication.stop({ release: true })
    await guest.stop().catch(() => {})
    for (const moved of mesh.resumed.splice(0)) await moved.stop().catch(() => {})
    mesh.host.drop(guest.vmId)
  }
}

async function main (): Promise<void> {
  if (!existsSync(QEMU)) {
    console.log(`bench:migrate-qemu: not measured: ${QEMU} is missing (Debian: apt-get install qemu-system-x86)`)
    return
  }
  const hardware = hardwareVirtualization()
  const dir = mkdtempSync(join(tmpdir(), 'myc-qemu-'))
  const kernel = join(dir, 'page-writer.kernel')
  writeFileSync(kernel, multibootPageWriter(MEMORY_MB << 20, { pattern: 'full', reportEvery: 0 }).kernel)
  const primary = await startReplicationNode()
  const backup = await startReplicationNode()
  await connect(primary, [backup])
  const resumed: RunningGuest[] = []
  const host = new ReplicaHost(backup, { protocolPrefix: PREFIX, secretKey: secretKeyOf(backup), allocateMemory: allocateGuestMemory, restoreGuest: guestRestorer(defaultEngine()) })
  host.on('resumed', (_vmId, guest) => { resumed.push(guest as RunningGuest) })
  await host.start()
  const mesh = { primary, backup, host, resumed }
  console.log(`${MEMORY_MB} MiB guest, full pattern; QEMU ${hardware ? 'under KVM (hardware virtualization)' : 'emulating its vCPU (TCG: no hardware virtualization here), paced by -icount align'}; Mycelium on the ${defaultEngine()} engine`)
  console.log(`${'pacing'.padEnd(10)} ${'who'.padEnd(30)} ${'pages/s'.padStart(8)} ${'total ms'.padStart(9)} ${'downtime ms'.padStart(12)} ${'MB'.padStart(7)}`)
  const print = (pacing: string, row: Row): void => {
    console.log(`${pacing.padEnd(10)} ${row.who.padEnd(30)} ${row.pagesPerS.toFixed(0).padStart(8)} ${row.totalMs.toFixed(0).padStart(9)} ${row.downtimeMs.toFixed(1).padStart(12)} ${row.mb.toFixed(1).padStart(7)}${row.note === undefined ? '' : `  (${row.note})`}`)
  }
  try {
    const pacings = hardware ? [{ label: 'max', accel: ['-machine', 'pc,accel=kvm', '-cpu', 'host'] }] : SHIFTS.map(shift => ({ label: `icount ${shift}`, accel: ['-machine', 'pc,accel=tcg', '-icount', `shift=${shift},sleep=on,align=on`] }))
    for (const { label, accel } of pacings) {
      const one = await qemuRow(dir, kernel, accel, 1)
      print(label, one)
      print(label, await qemuRow(dir, kernel, accel, 4))
      // Mycelium's guest at the rate QEMU's really wrote.
      print(label, await myceliumRow(mesh, 1, one.pagesPerS))
      print(label, await myceliumRow(mesh, 4, one.pagesPerS))
    }
  } finally {
    await host.stop()
    await stopAll([primary, backup])
    rmSync(dir, { recursive: true, force: true })
  }
}

await main()
