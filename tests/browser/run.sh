#!/usr/bin/env bash
# The real-browser test of `rfc6455 chat` (see README.md here). Needs Debian's chromium and the
# release binary:  apt-get install -y chromium fonts-noto-cjk && cargo build --release
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
if [ ! -x /usr/bin/chromium ]; then
  echo "tests/browser/run.sh: /usr/bin/chromium not found: apt-get install -y chromium fonts-noto-cjk" >&2
  exit 1
fi
command -v node >/dev/null || { echo "tests/browser/run.sh: node not found" >&2; exit 1; }
if [ ! -d node_modules/playwright-core ]; then
  npm ci --no-audit --no-fund
fi
# RFC6455_TLS=1: over https:// and wss:// (the binary needs the cargo feature tls); node's own
# requests trust the test CA.
if [ "${RFC6455_TLS:-}" = 1 ]; then
  export NODE_EXTRA_CA_CERTS="$PWD/../data/tls/ca.pem"
fi
exec node chat.test.mjs
