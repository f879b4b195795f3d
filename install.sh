#!/bin/sh
# Installs a Mycelium node from this source tree: Node (from the npm registry when the
# machine's is missing or too old), the project and its production dependencies, a
# `mycelium` command, a systemd unit that keeps the node running, and an uninstaller.
# Re-running it upgrades in place and keeps the node's identity and data.
#
#   sh install.sh                          install and start the node
#   MYCELIUM_INVITE=<token> sh install.sh  ... and join a network first
#   sh install.sh --help                   all options
set -eu

NODE_MAJOR_DEFAULT=24
NODE_MIN_MAJOR=22
NODE_MIN_MINOR=18

usage() {
  cat <<'EOF'
usage: sh install.sh [--help] [--fetch-node DIR]

Installs a Mycelium node from this source tree, with a systemd unit that starts it at boot
and restarts it on failure. Run it again to upgrade: the node keeps its identity and data.

Options (environment variables):
  MYCELIUM_PREFIX=DIR       where to install (default /opt/mycelium as root,
                            ~/.local/share/mycelium otherwise)
  MYCELIUM_HOME=DIR         the node's data directory: keys, certificates, spores
                            (default /var/lib/mycelium as root, ~/.mycelium otherwise)
  MYCELIUM_INVITE=TOKEN     join the network of this invite before starting
                            (same as: mycelium join TOKEN)
  MYCELIUM_SKIP_SERVICE=1   write the systemd unit but do not enable or start it
  MYCELIUM_START_ARGS="..." extra arguments for `mycelium start` in the unit
                            (e.g. "--listen /ip4/0.0.0.0/tcp/7700 --api-port 7777")
  MYCELIUM_NODE_VERSION=V   Node version to fetch when one is needed: a major (default
                            24, the newest 24.x) or an exact version (24.21.0)
  MYCELIUM_FORCE_NODE=1     fetch Node even when the machine's is recent enough
  MYCELIUM_NODE_CACHE=DIR   keep downloaded Node packages here and reuse them
  MYCELIUM_SERVICE_MODE=system|user
                            system unit (default as root) or user unit (default otherwise)
  MYCELIUM_UNIT_DIR=DIR     where the unit goes (default /etc/systemd/system, or
                            ~/.config/systemd/user for a user unit)
  MYCELIUM_BIN_DIR=DIR      where a `mycelium` link on PATH goes (default /usr/local/bin
                            as root, ~/.local/bin otherwise; empty: no link)

  --fetch-node DIR          only download the Node this installer would use (for
                            MYCELIUM_ARCH, e.g. aarch64) into DIR, then stop: prepares a
                            Raspberry Pi's runtime from another machine
  MYCELIUM_ARCH=ARCH        the architecture to install for (default: uname -m)

Installed:
  $MYCELIUM_PREFIX/bin/mycelium               the command
  $MYCELIUM_PREFIX/bin/mycelium-uninstall.sh  removes what this installed
                                              (--purge also deletes MYCELIUM_HOME)
  $MYCELIUM_PREFIX/lib/mycelium               the project and its dependencies
  $MYCELIUM_PREFIX/lib/mycelium-node          Node, when it had to be fetched
  mycelium.service                            in MYCELIUM_UNIT_DIR

Needs: uname, tar, npm (to reach the npm registry), and systemd to run as a service.
EOF
}

fail() {
  printf 'install.sh: %s\n' "$*" >&2
  exit 1
}

say() {
  printf '%s\n' "$*"
}

FETCH_ONLY=
case "${1:-}" in
  -h|--help) usage; exit 0 ;;
  --fetch-node)
    [ -n "${2:-}" ] || { printf 'install.sh: --fetch-node needs a directory\n' >&2; exit 2; }
    FETCH_ONLY=$2 ;;
  '') ;;
  *) printf 'install.sh: unknown option %s\n\n' "$1" >&2; usage >&2; exit 2 ;;
esac

# --- where things go --------------------------------------------------------

SRC=$(cd "$(dirname "$0")" && pwd)
[ -f "$SRC/package.json" ] && [ -f "$SRC/bin/mycelium.js" ] || fail "run install.sh from an unpacked Mycelium source tree (no package.json and bin/mycelium.js beside it in $SRC)"

if [ "$(id -u)" = 0 ]; then
  default_mode=system
  default_prefix=/opt/mycelium
  default_home=/var/lib/mycelium
  default_bin=/usr/local/bin
else
  default_mode=user
  default_prefix="$HOME/.local/share/mycelium"
  default_home="$HOME/.mycelium"
  default_bin="$HOME/.local/bin"
fi
MODE=${MYCELIUM_SERVICE_MODE:-$default_mode}
case "$MODE" in
  system) default_unit_dir=/etc/systemd/system; wanted_by=multi-user.target ;;
  user) default_unit_dir="${XDG_CONFIG_HOME:-$HOME/.config}/systemd/user"; wanted_by=default.target ;;
  *) fail "MYCELIUM_SERVICE_MODE must be system or user (got \"$MODE\")" ;;
esac
PREFIX=${MYCELIUM_PREFIX:-$default_prefix}
DATA=${MYCELIUM_HOME:-$default_home}
UNIT_DIR=${MYCELIUM_UNIT_DIR:-$default_unit_dir}
BIN_DIR=${MYCELIUM_BIN_DIR-$default_bin}
NODE_MAJOR=${MYCELIUM_NODE_VERSION:-$NODE_MAJOR_DEFAULT}
case "$PREFIX" in /*) ;; *) fail "MYCELIUM_PREFIX must be an absolute path (got \"$PREFIX\")" ;; esac
case "$DATA" in /*) ;; *) fail "MYCELIUM_HOME must be an absolute path (got \"$DATA\")" ;; esac

APP="$PREFIX/lib/mycelium"
NODE_DIR="$PREFIX/lib/mycelium-node"
UNIT="$UNIT_DIR/mycelium.service"

# --- architecture and Node ---------------------------------------------------

machine=${MYCELIUM_ARCH:-$(uname -m)}
case "$machine" in
  x86_64|amd64) arch=x64 ;;
  aarch64|arm64) arch=arm64 ;;
  armv7l|armv7*) arch=armv7l ;;
  *) fail "unsupported architecture \"$machine\": Mycelium installs on x86_64 (Linux laptops, servers) and aarch64 (64-bit Raspberry Pi OS); on armv7l only with Node >= $NODE_MIN_MAJOR.$NODE_MIN_MINOR already installed" ;;
esac
[ "$(uname -s)" = Linux ] || fail "unsupported system $(uname -s): install.sh sets up Linux machines"
# Node's (and npm's) name for the architecture
node_arch=$arch
if [ "$arch" = armv7l ]; then node_arch=arm; fi
case "$(uname -m)" in
  x86_64|amd64) host_arch=x64 ;;
  aarch64|arm64) host_arch=arm64 ;;
  armv7l|armv7*) host_arch=arm ;;
  *) host_arch=$(uname -m) ;;
esac
# Installing for another architecture (an aarch64 tree prepared on x86_64): npm must fetch the
# target's native addons (node-datachannel ships one package per platform), not this machine's.
npm_platform=
if [ "$node_arch" != "$host_arch" ]; then npm_platform="--os=linux --cpu=$node_arch --libc=glibc"; fi

node_recent_enough() {
  v=$("$1" -p 'process.versions.node' 2>/dev/null) || return 1
  major=${v%%.*}
  rest=${v#*.}
  minor=${rest%%.*}
  [ "$major" -gt "$NODE_MIN_MAJOR" ] || { [ "$major" -eq "$NODE_MIN_MAJOR" ] && [ "$minor" -ge "$NODE_MIN_MINOR" ]; }
}

command -v npm >/dev/null 2>&1 || fail "npm is needed to reach the npm registry (Node and the dependencies come from there): install it (Debian / Raspberry Pi OS: apt-get install npm) and re-run"

# npm falls back on its cache when offline: ask the registry itself before blaming it.
registry_failure() {
  if ! npm ping >/dev/null 2>&1; then
    fail "no npm registry reachable ($1; npm ping failed for $(npm config get registry 2>/dev/null)): check the network, a proxy, or npm's registry setting"
  fi
  fail "$1 from the npm registry"
}

# One line for a failed `npm view`: its error code and summary, not its JSON.
npm_view_failure() {
  code=$(printf '%s\n' "$2" | sed -n 's/^ *"code": *"\([^"]*\)".*/\1/p' | head -n 1)
  summary=$(printf '%s\n' "$2" | sed -n 's/^ *"summary": *"\(.*\)",\{0,1\}$/\1/p' | head -n 1)
  case "$code" in
    '') registry_failure "npm view $1 found no version" ;;
    E404|ETARGET) fail "the npm registry has no $1 ($code): check MYCELIUM_NODE_VERSION" ;;
    SELF_SIGNED_CERT_IN_CHAIN|DEPTH_ZERO_SELF_SIGNED_CERT|UNABLE_TO_GET_ISSUER_CERT*|UNABLE_TO_VERIFY_LEAF_SIGNATURE|CERT_*)
      fail "the npm registry's TLS certificate is not trusted here ($code; a proxy that intercepts TLS?): give npm its CA (npm config set cafile /path/to/ca.pem) and re-run" ;;
    *) registry_failure "npm view $1 failed: $code${summary:+ ($summary)}" ;;
  esac
}

# Fetches node-linux-<arch>@<version or major> from the npm registry and unpacks its binary into $1.
fetch_node() {
  target=$1
  pkg="node-linux-$arch"
  if [ "$arch" = armv7l ]; then
    fail "Node >= $NODE_MIN_MAJOR.$NODE_MIN_MINOR is not published for armv7l on the npm registry: install Node $NODE_MIN_MAJOR.$NODE_MIN_MINOR or newer from your distribution (or use 64-bit Raspberry Pi OS) and re-run"
  fi
  # the highest published version of that major (npm lists them in no useful order); npm
  # prints a failure as JSON on stdout too, so only digits-and-dots lines count as versions
  answer=$(npm view "$pkg@$NODE_MAJOR" version --json 2>/dev/null) || true
  version=$(printf '%s' "$answer" | tr -d '[]" \n' | tr ',' '\n' | grep -E '^[0-9]+\.[0-9]+\.[0-9]+$' | sort -t. -k1,1n -k2,2n -k3,3n | tail -n 1) || true
  [ -n "$version" ] || npm_view_failure "$pkg@$NODE_MAJOR" "$answer"
  cache=${MYCELIUM_NODE_CACHE:-}
  cleanup_cache=
  if [ -z "$cache" ]; then cache=$(mktemp -d); cleanup_cache=$cache; fi
  mkdir -p "$cache"
  tarball="$cache/$pkg-$version.tgz"
  if [ ! -s "$tarball" ]; then
    say "fetching Node $version ($pkg) from the npm registry"
    (cd "$cache" && npm pack "$pkg@$version" --prefer-offline --silent >/dev/null 2>&1) || registry_failure "could not download $pkg@$version"
  fi
  rm -rf "$target.new"
  mkdir -p "$target.new"
  tar -xzf "$tarball" -C "$target.new" --strip-components=1 package/bin/node package/LICENSE || fail "could not unpack $tarball"
  if [ -n "$cleanup_cache" ]; then rm -rf "$cleanup_cache"; fi
  rm -rf "$target"
  mv "$target.new" "$target"
}

if [ -n "$FETCH_ONLY" ]; then
  case "$FETCH_ONLY" in /*) ;; *) FETCH_ONLY="$(pwd)/$FETCH_ONLY" ;; esac
  fetch_node "$FETCH_ONLY"
  say "Node for $machine ($arch) is in $FETCH_ONLY/bin/node"
  exit 0
fi

# a machine's own Node is used only when it is built for the target
NODE=
if [ "${MYCELIUM_FORCE_NODE:-}" != 1 ]; then
  for candidate in "$(command -v node 2>/dev/null || true)" "$NODE_DIR/bin/node"; do
    if [ -n "$candidate" ] && [ -x "$candidate" ] && node_recent_enough "$candidate" && [ "$("$candidate" -p process.arch 2>/dev/null)" = "$node_arch" ]; then NODE=$candidate; break; fi
  done
fi
mkdir -p "$PREFIX/bin" "$PREFIX/lib"
if [ -z "$NODE" ] || [ "${MYCELIUM_FORCE_NODE:-}" = 1 ]; then
  fetch_node "$NODE_DIR"
  NODE="$NODE_DIR/bin/node"
  # an emulated or foreign binary would fail later and less clearly
  if ! "$NODE" --version >/dev/null 2>&1; then
    if [ "$node_arch" != "$host_arch" ]; then
      fail "the Node fetched for $machine does not run on this $(uname -m) machine ($NODE): installing for $machine here needs qemu-user registered with binfmt_misc (Debian: qemu-user-static binfmt-support, and QEMU_LD_PREFIX pointing at an $machine C library); otherwise run install.sh on the $machine machine itself"
    fi
    fail "the Node fetched for $arch does not run on this machine ($NODE)"
  fi
fi
say "using Node $("$NODE" --version) at $NODE"

# --- the project --------------------------------------------------------------

# Bundles are built with the dev tools of a development checkout, by a Node that runs natively
# (esbuild is a native binary of this machine, also when installing for another architecture);
# a tree without them ships whatever dist/ holds.
build_node=
for candidate in "$SRC/node_modules/.bin/node" "$(command -v node 2>/dev/null || true)" "$NODE"; do
  if [ -n "$candidate" ] && [ -x "$candidate" ] && node_recent_enough "$candidate" && [ "$("$candidate" -p process.arch 2>/dev/null)" = "$host_arch" ]; then build_node=$candidate; break; fi
done
dev_tools=
if [ -d "$SRC/node_modules/esbuild" ] && [ -n "$build_node" ]; then dev_tools=1; fi

if [ ! -f "$SRC/dist/browser/app.js" ] && [ -n "$dev_tools" ] && [ -f "$SRC/browser-client/build.ts" ]; then
  say "building the browser client"
  (cd "$SRC" && "$build_node" browser-client/build.ts >/dev/null 2>&1) || say "note: the browser client could not be built; nodes will not serve it"
fi

# The service runs the daemon bundled by `npm run build:node` (dist/mycelium.mjs): a bundle
# loads far less code than the TypeScript sources, so it needs less memory and CPU to start
# (README, "Memory"). Without a bundle the command runs the sources.
stale_bundle=
if [ -n "$dev_tools" ] && [ -f "$SRC/node/build.ts" ]; then
  say "bundling the daemon"
  # a bundle left from an older build must not run in place of these sources
  (cd "$SRC" && "$build_node" node/build.ts >/dev/null 2>&1) || { stale_bundle=1; say "note: the daemon could not be bundled (npm run build:node); the sources will run instead"; }
fi

# Built alongside and swapped in at the end: a failed upgrade leaves the old install working.
stage="$PREFIX/lib/.mycelium-new"
rm -rf "$stage"
mkdir -p "$stage"
for entry in "$SRC"/* "$SRC"/.npmrc; do
  name=$(basename "$entry")
  case "$name" in
    node_modules|test|test-results|.git|.ci|install.sh) continue ;;
  esac
  if [ -e "$entry" ]; then cp -R "$entry" "$stage/"; fi
done
if [ -n "$stale_bundle" ]; then rm -f "$stage/dist/mycelium.mjs"; fi
stamp="$arch $(cksum <"$stage/package-lock.json")"
if [ -d "$APP/node_modules" ] && [ -f "$APP/.install-stamp" ] && [ "$(cat "$APP/.install-stamp")" = "$stamp" ]; then
  say "dependencies unchanged: reusing them"
  cp -al "$APP/node_modules" "$stage/node_modules" 2>/dev/null || cp -R "$APP/node_modules" "$stage/node_modules"
else
  say "installing production dependencies (npm ci --omit=dev)"
  # --ignore-scripts: no dev tools are installed to run `prepare`; the native modules the
  # node uses ship prebuilt binaries in per-platform packages
  # shellcheck disable=SC2086 # $npm_platform is several options or none
  if ! (cd "$stage" && npm ci $npm_platform --omit=dev --ignore-scripts --legacy-peer-deps --prefer-offline --no-audit --no-fund --loglevel=error >"$stage.log" 2>&1); then
    tail -n 20 "$stage.log" >&2
    rm -rf "$stage" "$stage.log"
    fail "npm ci failed (log above); if the npm registry is unreachable, check the network or npm's registry setting"
  fi
  rm -f "$stage.log"
fi
printf '%s\n' "$stamp" >"$stage/.install-stamp"
rm -rf "$APP.old"
if [ -d "$APP" ]; then mv "$APP" "$APP.old"; fi
mv "$stage" "$APP"
rm -rf "$APP.old"

# --- the command -----------------------------------------------------------------

entry=bin/mycelium.js
if [ -f "$APP/dist/mycelium.mjs" ]; then entry=dist/mycelium.mjs; fi
# --max-semi-space-size=1: a 1 MiB young generation keeps an idle node ~5 MiB smaller; its
# allocation rate is low, so the extra scavenges cost next to nothing
cat >"$PREFIX/bin/mycelium" <<EOF
#!/bin/sh
# The mycelium command, installed by install.sh; the data directory defaults to the service's.
: "\${MYCELIUM_HOME:=$DATA}"
export MYCELIUM_HOME
exec "$NODE" --max-semi-space-size=1 "$APP/$entry" "\$@"
EOF
chmod 755 "$PREFIX/bin/mycelium"
# once: under emulation (or on a slow board) each run of the command costs seconds
installed_version=$("$PREFIX/bin/mycelium" --version) || fail "the installed command does not run: $PREFIX/bin/mycelium --version failed"

link=
if [ -n "$BIN_DIR" ] && [ "$BIN_DIR" != "$PREFIX/bin" ]; then
  mkdir -p "$BIN_DIR"
  if [ -L "$BIN_DIR/mycelium" ] || [ ! -e "$BIN_DIR/mycelium" ]; then
    ln -sfn "$PREFIX/bin/mycelium" "$BIN_DIR/mycelium"
    link="$BIN_DIR/mycelium"
  else
    say "note: $BIN_DIR/mycelium exists and is not a link; leaving it alone (use $PREFIX/bin/mycelium)"
  fi
fi

mkdir -p "$DATA"
chmod 700 "$DATA"

# --- joining a network -------------------------------------------------------------

if [ -n "${MYCELIUM_INVITE:-}" ]; then
  if [ -f "$DATA/network.json" ]; then
    say "note: $DATA is already a member of a network; MYCELIUM_INVITE ignored"
  else
    say "joining the network of the invite"
    MYCELIUM_HOME="$DATA" "$PREFIX/bin/mycelium" join "$MYCELIUM_INVITE" || fail "joining with MYCELIUM_INVITE failed (message above); the node is installed: ask for a new invite and run: $PREFIX/bin/mycelium join <invite>"
  fi
fi

# --- the service -------------------------------------------------------------------

mkdir -p "$UNIT_DIR"
cat >"$UNIT" <<EOF
# Mycelium node, installed by install.sh (remove with $PREFIX/bin/mycelium-uninstall.sh)
[Unit]
Description=Mycelium mesh node
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
Environment=MYCELIUM_HOME=$DATA
ExecStart=$PREFIX/bin/mycelium start ${MYCELIUM_START_ARGS:-}
Restart=on-failure
RestartSec=5
TimeoutStopSec=20

[Install]
WantedBy=$wanted_by
EOF

# --- the uninstaller ---------------------------------------------------------------------

if [ "$MODE" = user ]; then systemctl_cmd="systemctl --user"; else systemctl_cmd=systemctl; fi
cat >"$PREFIX/bin/mycelium-uninstall.sh" <<EOF
#!/bin/sh
# Removes what install.sh installed. The node's data ($DATA: its keys and certificates) is
# kept unless --purge is given.
set -eu
purge=
case "\${1:-}" in
  --purge) purge=1 ;;
  '') ;;
  -h|--help) echo "usage: sh mycelium-uninstall.sh [--purge]   (--purge also deletes $DATA)"; exit 0 ;;
  *) echo "mycelium-uninstall.sh: unknown option \$1" >&2; exit 2 ;;
esac
# systemd is asked only about a unit in its own directory: one written elsewhere
# (MYCELIUM_UNIT_DIR) was never known to it
systemd=
if [ "$UNIT_DIR" = "$default_unit_dir" ] && command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then systemd=1; fi
if [ -n "\$systemd" ]; then $systemctl_cmd disable --now mycelium.service >/dev/null 2>&1 || true; fi
rm -f "$UNIT"
if [ -n "\$systemd" ]; then $systemctl_cmd daemon-reload >/dev/null 2>&1 || true; fi
if [ -n "$link" ] && [ -L "$link" ] && [ "\$(readlink "$link")" = "$PREFIX/bin/mycelium" ]; then rm -f "$link"; fi
rm -rf "$APP" "$NODE_DIR" "$PREFIX/lib/.mycelium-new"
rm -f "$PREFIX/bin/mycelium"
rmdir "$PREFIX/lib" 2>/dev/null || true
if [ -n "\$purge" ]; then rm -rf "$DATA"; echo "deleted $DATA"; else echo "kept the node's data in $DATA (delete it with --purge)"; fi
rm -f "$PREFIX/bin/mycelium-uninstall.sh"
rmdir "$PREFIX/bin" "$PREFIX" 2>/dev/null || true
echo "mycelium uninstalled"
EOF
chmod 755 "$PREFIX/bin/mycelium-uninstall.sh"

# --- starting it ---------------------------------------------------------------------------

manual="MYCELIUM_HOME=$DATA $PREFIX/bin/mycelium start ${MYCELIUM_START_ARGS:-}"
if [ "${MYCELIUM_SKIP_SERVICE:-}" = 1 ]; then
  say "unit written to $UNIT (not enabled: MYCELIUM_SKIP_SERVICE=1)"
  say "start it with: $systemctl_cmd daemon-reload && $systemctl_cmd enable --now mycelium"
elif ! command -v systemctl >/dev/null 2>&1 || [ ! -d /run/systemd/system ]; then
  say "no systemd on this machine: the unit is written to $UNIT but nothing starts the node for you."
  say "start it by hand (in the background: nohup ... &):"
  say "  $manual"
else
  $systemctl_cmd daemon-reload || fail "systemctl daemon-reload failed; start the node by hand: $manual"
  $systemctl_cmd enable "$UNIT" >/dev/null 2>&1 || fail "could not enable mycelium.service; start the node by hand: $manual"
  # restart, not start: an upgrade must replace the running node
  $systemctl_cmd restart mycelium.service || fail "mycelium.service did not start: see journalctl $( [ "$MODE" = user ] && printf -- '--user ' )-u mycelium"
  say "mycelium.service is running (logs: journalctl $( [ "$MODE" = user ] && printf -- '--user ' )-u mycelium -f)"
  if [ "$MODE" = user ]; then say "a user unit stops at logout unless lingering is on: loginctl enable-linger $(id -un)"; fi
fi

say ""
say "installed mycelium $installed_version in $PREFIX (data: $DATA)"
say "  command:    ${link:-$PREFIX/bin/mycelium}"
say "  status:     mycelium status"
say "  uninstall:  sh $PREFIX/bin/mycelium-uninstall.sh"
