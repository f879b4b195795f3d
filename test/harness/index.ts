// The multi-node test harness: real `mycelium` processes on loopback or in network
// namespaces, driven through the CLI.
export { TestNode, CLI, SOURCE_CLI, NODE, REPO_ROOT } from './test-node.ts'
export type { CliResult, TestNodeOptions } from './test-node.ts'
export { Cluster } from './cluster.ts'
export type { ClusterOptions } from './cluster.ts'
export { NetnsLab, netnsUnavailableReason } from './netns.ts'
export type { LabHost } from './netns.ts'
export { waitFor, sleep, WaitTimeoutError } from './wait.ts'
export { capabilities, guestEngineVariants, titled, QEMU_AARCH64, AARCH64_SYSROOT, CHROMIUM_PATH } from './capabilities.ts'
export type { Capability } from './capabilities.ts'
