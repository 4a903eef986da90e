#!/bin/sh
# puppeteer.sh - fetch puppeteer-core (pinned) from npm into .cache/npm/node_modules: the driver
# of the store page's tests (tests/store/ui.mjs) in Debian's /usr/bin/chromium. puppeteer-core
# never downloads a browser. Idempotent and quiet; never fails the test run (the page test skips
# itself when it is missing).
cd "$(dirname "$0")/../.." || exit 0
D=.cache/npm
V=24.10.0
[ -f "$D/node_modules/puppeteer-core/package.json" ] && exit 0
if ! command -v npm >/dev/null 2>&1; then
  echo "tunic test-setup: npm not found; the store page test will be skipped" >&2
  exit 0
fi
mkdir -p "$D"
[ -f "$D/package.json" ] || echo '{"name":"tunic-test-cache","private":true}' > "$D/package.json"
if ! (cd "$D" && npm install --no-audit --no-fund --silent --no-progress "puppeteer-core@$V" >/dev/null 2>npm-puppeteer-error.log); then
  echo "tunic test-setup: npm install of puppeteer-core failed (see $D/npm-puppeteer-error.log); the page test will be skipped" >&2
fi
exit 0
