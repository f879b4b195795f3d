// An instance must not outlive the daemon that supervises it: a daemon killed with SIGKILL (or
// by the OOM killer) runs no stop(), and an app left running without its supervisor is a copy
// nobody knows of — for a single-instance application, a second running copy next to the one
// started elsewhere under the next lease term. So every instance is started behind a small
// shell that holds the read end of a pipe whose other end only the daemon holds, and that kills
// the instance's whole process group (kill -KILL 0) the moment the pipe reads end-of-file,
// which is when the daemon is gone, however it ended. The app itself does not inherit the pipe.

/** the fd of the spawned shell that carries the lifeline */
export const LIFELINE_FD = 4

/** Shell words that start the watcher in the background; then the shell goes on with `then`. */
export function lifelineScript (then: string): string {
  return `{ read _ <&${LIFELINE_FD}; kill -KILL 0; } & ${then}`
}

/** A command and its arguments, behind the lifeline (`exec` keeps the app's pid the shell's). */
export function withLifeline (command: string, args: string[]): { command: string, args: string[] } {
  return { command: '/bin/sh', args: ['-c', lifelineScript(`exec "$@" ${LIFELINE_FD}<&-`), 'mycelium-lifeline', command, ...args] }
}
