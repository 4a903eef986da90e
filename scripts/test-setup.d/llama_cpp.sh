#!/bin/sh
# llama_cpp.sh - fetch llama.cpp as the peer of `tunic export --gguf` (issue 21): the npm package
# node-llama-cpp (pinned) with its prebuilt CPU binaries for linux-x64 (@node-llama-cpp/linux-x64:
# libllama, libggml and one libggml-cpu per x86-64 level, chosen at run time), into
# .cache/npm/node_modules. Only the npm registry is used: no binary download, no build from
# source (NODE_LLAMA_CPP_SKIP_DOWNLOAD), no CUDA/Vulkan variants (--omit=optional).
# Idempotent and quiet; never fails the test run (tests/gguf skips itself when it is missing).
cd "$(dirname "$0")/../.." || exit 0
D=.cache/npm
V=3.21.1
[ -f "$D/node_modules/node-llama-cpp/package.json" ] && [ -f "$D/node_modules/@node-llama-cpp/linux-x64/package.json" ] && exit 0
[ "$(uname -s)-$(uname -m)" = "Linux-x86_64" ] || exit 0
if ! command -v npm >/dev/null 2>&1; then
  echo "tunic test-setup: npm not found; the llama.cpp (GGUF) tests will be skipped" >&2
  exit 0
fi
mkdir -p "$D"
[ -f "$D/package.json" ] || echo '{"name":"tunic-test-cache","private":true}' > "$D/package.json"
if ! (cd "$D" && NODE_LLAMA_CPP_SKIP_DOWNLOAD=true npm install --no-audit --no-fund --silent --no-progress \
      --omit=optional "node-llama-cpp@$V" "@node-llama-cpp/linux-x64@$V" >/dev/null 2>npm-llama-error.log); then
  echo "tunic test-setup: npm install of node-llama-cpp failed (see $D/npm-llama-error.log); the GGUF tests will be skipped" >&2
fi
exit 0
