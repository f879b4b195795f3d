#!/usr/bin/env node
// Entry point of the `mycelium` command. The sources are TypeScript run by Node's own type
// stripping (Node >= 22.18), so there is no build step between a checkout and a running node.
const [major, minor] = process.versions.node.split('.').map(Number)
if (major < 22 || (major === 22 && minor < 18)) {
  process.stderr.write(`mycelium: Node ${process.versions.node} is too old; Node 22.18 or newer is needed (install.sh installs Node 24 for you)\n`)
  process.exit(1)
}
const { main } = await import('../node/cli/index.ts')
// exit explicitly: a CLI command must not linger on a socket a library left open
process.exit(await main(process.argv.slice(2)))
