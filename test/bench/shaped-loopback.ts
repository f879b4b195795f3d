// Shaping for in-process link benches: as root, re-run the bench inside a fresh network
// namespace whose loopback sends each listed port's inbound traffic through its own tc token
// bucket (htb only classifies; its class rates are far above the tbf rate, which shapes).
// Every node of the bench stays in one process: the namespace only isolates and shapes lo.
import { execFileSync, spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'

function sh (args: string[]): void {
  execFileSync(args[0], args.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] })
}

export const INSIDE_NETNS = process.argv.includes('--inside-netns')

/**
 * Run `script` again inside a new network namespace (with `--inside-netns`); returns false when
 * that cannot be done here (not root, or ip netns unavailable), true once the child finished.
 */
export function rerunInNamespace (script: string, skipEnv: string): boolean {
  if (INSIDE_NETNS || process.getuid?.() !== 0 || process.env[skipEnv] === '1') return false
  const namespace = `mycb${randomBytes(3).toString('hex')}`
  try {
    sh(['ip', 'netns', 'add', namespace])
  } catch (error) {
    console.log(`shaped: cannot create a network namespace: ${(error as Error).message.split('\n')[0]}`)
    return false
  }
  try {
    const result = spawnSync('ip', ['netns', 'exec', namespace, process.execPath, ...process.execArgv, script, '--inside-netns'], { stdio: 'inherit' })
    process.exitCode = result.status ?? 1
  } finally {
    try { sh(['ip', 'netns', 'del', namespace]) } catch {}
  }
  return true
}

/** Inside the bench's namespace: lo up, and traffic to each of `ports` limited to `rateMbit`. */
export function shapePorts (ports: readonly number[], rateMbit: number): void {
  sh(['ip', 'link', 'set', 'lo', 'up'])
  sh(['tc', 'qdisc', 'add', 'dev', 'lo', 'root', 'handle', '1:', 'htb', 'default', '1'])
  sh(['tc', 'class', 'add', 'dev', 'lo', 'parent', '1:', 'classid', '1:1', 'htb', 'rate', '40gbit', 'quantum', '65536'])
  ports.forEach((port, index) => {
    const band = index + 2
    sh(['tc', 'class', 'add', 'dev', 'lo', 'parent', '1:', 'classid', `1:${band}`, 'htb', 'rate', '40gbit', 'quantum', '65536'])
    sh(['tc', 'qdisc', 'add', 'dev', 'lo', 'parent', `1:${band}`, 'handle', `${band}0:`, 'tbf', 'rate', `${rateMbit}mbit`, 'burst', '256kb', 'latency', '200ms'])
    sh(['tc', 'filter', 'add', 'dev', 'lo', 'parent', '1:', 'protocol', 'ip', 'prio', '1', 'u32', 'match', 'ip', 'dport', String(port), '0xffff', 'flowid', `1:${band}`])
  })
}
