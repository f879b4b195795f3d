// How a service starts in namespaces of its own, and how its end is read back.
//
// The runner spawns a shell that waits on fd 3 until the runner has admitted it to the
// instance's cgroup, then becomes unshare (same pid): everything unshare forks is born in the
// cgroup, where a process forked before the admission would have escaped it. unshare forks the
// namespace's PID 1, a second shell, which runs the app as its child. The app is not PID 1
// itself because the kernel drops a signal sent to a namespace's PID 1 from outside unless that
// process handles it: stop()'s SIGTERM would never reach an app relying on the default action.
// All of them stay in the session and process group the runner made, so a signal to the group
// reaches each: SIGTERM ends the app and is dropped at the shell (and held back by unshare,
// which waits); SIGKILL and SIGSTOP reach even a PID 1 from outside. While it waits the shell
// also reaps what the app orphans. When the app ends the shell ends, the kernel kills whatever
// is left in the namespace, and unshare exits with the shell's status; --kill-child takes the
// namespace down if unshare itself is killed.
import { constants } from 'node:os'
import type { Unshare } from './namespace-support.ts'
import { LIFELINE_FD, lifelineScript } from './lifeline.ts'

/** the spawned shell's fd the runner closes once the process is in its cgroup */
export const ADMISSION_FD = 3
const AWAIT_ADMISSION = `read _ <&${ADMISSION_FD}; ${lifelineScript(`exec "$@" ${ADMISSION_FD}<&- ${LIFELINE_FD}<&-`)}`
/** variables a shell adds to its children's environment, taken out again unless the app's own */
const SHELL_VARIABLES = ['PWD', 'SHLVL']

export function namespacedInvocation (unshare: Unshare, file: string, args: string[], env: Record<string, string>): { command: string, args: string[] } {
  const added = SHELL_VARIABLES.filter(name => !(name in env))
  // `exit $?` after the app keeps the shell from exec'ing it, which would make the app PID 1
  const init = `${added.length > 0 ? `unset ${added.join(' ')}; ` : ''}"$@"; exit $?`
  return {
    command: '/bin/sh',
    args: ['-c', AWAIT_ADMISSION, 'mycelium-admission', unshare.program, ...unshare.flags, '--', '/bin/sh', '-c', init, 'mycelium-init', file, ...args]
  }
}

const SIGNAL_NAMES = new Map<number, string>()
// the first of two names for one number is the one Node reports (SIGABRT, not SIGIOT)
for (const [name, number] of Object.entries(constants.signals)) if (!SIGNAL_NAMES.has(number)) SIGNAL_NAMES.set(number, name)

/**
 * The app's end from unshare's: PID 1's shell reports an app killed by signal N as status
 * 128+N, read back as that signal, as a service outside a namespace reports it. An app that
 * itself exits with such a status reads as killed, as it does under any shell. unshare killed
 * with its group (stop's SIGKILL) is reported as it is.
 */
export function appExit (code: number | null, signal: NodeJS.Signals | null): { code: number | null, signal: string | null } {
  const name = code !== null && code > 128 ? SIGNAL_NAMES.get(code - 128) : undefined
  return name === undefined ? { code, signal } : { code: null, signal: name }
}
