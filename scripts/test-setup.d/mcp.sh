#!/bin/sh
# mcp.sh - fetch the MCP TypeScript SDK (@modelcontextprotocol/sdk, with zod for its tool
# schemas) from npm into .cache/npm/node_modules: tests/agent/mcp_server.mjs is a real MCP
# server built on it, which the MCP client of src/agent is tested against. Idempotent and
# quiet; never fails the test run (the MCP test skips itself when the package is missing).
cd "$(dirname "$0")/../.." || exit 0
D=.cache/npm
PKGS="@modelcontextprotocol/sdk@1.32.2 zod@3.25.76"
[ -f "$D/node_modules/@modelcontextprotocol/sdk/package.json" ] && [ -f "$D/node_modules/zod/package.json" ] && exit 0
if ! command -v npm >/dev/null 2>&1; then
  echo "tunic test-setup: npm not found; the MCP test will be skipped" >&2
  exit 0
fi
mkdir -p "$D"
[ -f "$D/package.json" ] || echo '{"name":"tunic-test-cache","private":true}' > "$D/package.json"
if ! (cd "$D" && npm install --no-audit --no-fund --silent --no-progress $PKGS >/dev/null 2>npm-error.log); then
  echo "tunic test-setup: npm install of the MCP SDK failed (see $D/npm-error.log); the MCP test will be skipped" >&2
fi
exit 0
