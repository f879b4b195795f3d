// The runner: application instances on one machine. Services are supervised processes (own
// session, cgroup limits and namespaces where the host allows them, rotating logs, health,
// restart with back-off); jobs are WASI modules run to completion in a worker thread. It uses
// Node's built-ins, /bin/sh and util-linux's unshare where present, and knows nothing of the
// node around it.
export { detectLimits, DEFAULT_CGROUP_ROOT } from './enforced-limits.ts'
export type { EnforcedLimits } from './enforced-limits.ts'
export { detectNamespaces, probeNamespaces } from './namespace-support.ts'
export type { NamespaceDetector, NamespaceSupport } from './namespace-support.ts'
export { ServiceInstance, STOP_GRACE_MS } from './service-instance.ts'
export type { ServiceInstanceOptions } from './service-instance.ts'
export { DEFAULT_BACKOFF, DEFAULT_LOG_MAX_BYTES } from './service-spec.ts'
export type { ServiceSpec } from './service-spec.ts'
export type { InstanceState, InstanceStatus, InstanceExit } from './service-status.ts'
export { InvalidSpecError } from './invalid-spec-error.ts'
export { readLog, DEFAULT_TAIL_BYTES } from './read-log.ts'
export { followLog, type FollowOptions, type FollowCounters } from './follow-log.ts'
export type { LogStream } from './rotating-log.ts'
export { freePort } from './free-port.ts'
export { runWasiJob, TIMEOUT_EXIT_CODE, TRAP_EXIT_CODE } from './wasi-job.ts'
export type { JobSpec, JobResult } from './wasi-job.ts'
export { InvalidWasmModuleError } from './invalid-wasm-module-error.ts'
