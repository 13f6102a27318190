#!/usr/bin/env bash
# Node interop tests: builds countersign, installs the pinned npm packages (npm ci) when needed,
# and runs the *.test.mjs files with Node's built-in test runner. Works from any directory.
#   test/node/run.sh                      # all files
#   test/node/run.sh oauth4webapi.test.mjs  # some of them (paths relative to test/node)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
tmp="$(mktemp -d "${TMPDIR:-/tmp}/countersign-node-run.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

echo "==> go build ./cmd/countersign" >&2
(cd "$root" && go build -o "$tmp/countersign" ./cmd/countersign)

# npm ci when node_modules is missing or was installed from another package-lock.json.
cd "$here"
lock_hash="$(node -e 'const c=require("crypto"),f=require("fs");process.stdout.write(c.createHash("sha256").update(f.readFileSync("package-lock.json")).digest("hex"))')"
stamp="node_modules/.countersign-lock-sha256"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$lock_hash" ]]; then
  echo "==> npm ci" >&2
  npm ci --no-audit --no-fund
  printf '%s' "$lock_hash" >"$stamp"
fi

if [[ $# -gt 0 ]]; then
  files=("$@")
else
  files=(./*.test.mjs)
fi

echo "==> node --test ${files[*]}" >&2
COUNTERSIGN_BIN="$tmp/countersign" node --test --test-reporter=spec "${files[@]}"
