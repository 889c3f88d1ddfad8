#!/usr/bin/env bash
# `npm run lint:package [-- TARBALL]`: lints the package as npm publishes it.
# Without an argument it packs the work tree into a temporary folder first
# (`npm pack` runs `prepack`, the real build, which empties dist/ first, so nothing stale is packed); with
# one it lints that tarball. publint checks package.json (exports, main,
# types, bin, files) against the tarball's files and fails on any message,
# suggestions included; attw (are the types wrong) checks that every entry
# point (".", "./postgres", "./redis", "./package.json") resolves to the right types under
# every TypeScript module resolution: node10, node16 from CJS and from ESM,
# bundler. Exits non-zero if either finds anything.
set -euo pipefail
tarball="${1:+$(realpath "$1")}"
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bin=node_modules/.bin

if [ -z "$tarball" ]; then
  scratch="$(mktemp -d)"
  trap 'rm -rf "$scratch"' EXIT
  npm pack --silent --pack-destination "$scratch" >/dev/null
  tarball="$(echo "$scratch"/*.tgz)"
fi

status=0
publint_output="$("$bin/publint" run --strict --level suggestion "$tarball")" || status=1
printf '%s\n' "$publint_output"
# publint exits 0 on suggestions: only "All good!" means it found nothing.
grep -q 'All good!' <<<"$publint_output" || status=1
"$bin/attw" --profile strict "$tarball" || status=1
exit "$status"
