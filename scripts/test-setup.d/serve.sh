#!/bin/sh
# serve.sh - the test peers of `tunic serve` (issue 18) from npm into .cache/npm/node_modules:
# the official OpenAI client (`openai`) that the API tests drive the server with, and
# puppeteer-core, which drives Debian's /usr/bin/chromium for the chat-page test (no browser
# is downloaded: puppeteer-core never fetches one). Idempotent and quiet; never fails the test
# run (the serve tests skip themselves when the packages are missing).
cd "$(dirname "$0")/../.." || exit 0
D=.cache/npm
PKGS="openai@6.49.0 puppeteer-core@24.10.0"
[ -f "$D/node_modules/openai/package.json" ] && [ -f "$D/node_modules/puppeteer-core/package.json" ] && exit 0
if ! command -v npm >/dev/null 2>&1; then
  echo "tunic test-setup: npm not found; the serve client tests will be skipped" >&2
  exit 0
fi
mkdir -p "$D"
[ -f "$D/package.json" ] || echo '{"name":"tunic-test-cache","private":true}' > "$D/package.json"
if ! (cd "$D" && npm install --no-audit --no-fund --silent --no-progress $PKGS >/dev/null 2>npm-error.log); then
  echo "tunic test-setup: npm install of the serve test packages failed (see $D/npm-error.log); serve client tests will be skipped" >&2
fi
exit 0
