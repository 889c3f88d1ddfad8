#!/usr/bin/env bash
# The whole test run, as `npm test` and CI run it:
#   1. installs the Debian packages the suites need when missing (PostgreSQL
#      15 and PgBouncer for the postgres driver, redis-server for the redis
#      driver, btrfs-progs and xfsprogs for the file-system suite; the Windows
#      suite installs Wine itself), which needs root on Debian/Ubuntu;
#   2. runs every ava suite (Linux: posix, portable, postgres, redis, CLI, package),
#      then the runtimes and CLI suites again in Bun and in Deno;
#   3. runs the Windows driver's suite under Wine (skip with
#      EXCLUSIVE_SKIP_WINDOWS=1 while developing: the summary then says so);
#   4. prints one closing line "N passed, N failed" for all of them.
set -uo pipefail
# Root's tools (dpkg's ldconfig and useradd, runuser) live in sbin, which a
# minimal PATH (cron, some CI runners) leaves out.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
cd "$(dirname "${BASH_SOURCE[0]}")/.."
log() { printf '# [test] %s\n' "$*" >&2; }

need=()
[ -x /usr/lib/postgresql/15/bin/initdb ] || need+=(postgresql-15)
[ -x /usr/sbin/pgbouncer ] || need+=(pgbouncer)
# The redis driver's suite starts its own redis-server.
[ -x /usr/bin/redis-server ] || need+=(redis-server)
# The file-system suite mounts btrfs and xfs images.
command -v mkfs.btrfs >/dev/null || need+=(btrfs-progs)
command -v mkfs.xfs >/dev/null || need+=(xfsprogs)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    log "missing: ${need[*]}. Install them (Debian/Ubuntu: sudo apt-get install -y ${need[*]}) and run again."
    exit 1
  fi
  log "installing ${need[*]}"
  apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >&2 || exit 1
  # Debian starts a default cluster and pgbouncer on install; the tests start their own.
  service postgresql stop >/dev/null 2>&1 || true
  service pgbouncer stop >/dev/null 2>&1 || true
  service redis-server stop >/dev/null 2>&1 || true
fi

mkdir -p .tmp
passed=0
failed=0
count() { # adds the "# pass N" / "# fail N" lines of a TAP file to the totals (every one: the Wine suite prints one per spec file)
  local p f
  p=$(grep -E '^# pass [0-9]+' "$1" | awk '{s += $3} END {if (NR > 0) print s}')
  f=$(grep -E '^# fail [0-9]+' "$1" | awk '{s += $3} END {if (NR > 0) print s}')
  passed=$((passed + ${p:-0}))
  failed=$((failed + ${f:-0}))
  [ -n "$p" ] || { log "$2 printed no TAP summary: counted as one failure"; failed=$((failed + 1)); }
}

log "ava suites"
npx ava --tap 2>&1 | tee .tmp/ava.tap
count .tmp/ava.tap ava

# Bun and Deno, the binaries of the npm packages `bun` and `deno`: the posix
# and portable drivers' multi-process suites, the runtimes suite and the CLI's
# (without its PostgreSQL tests) again, with the fixtures and the tool running
# in each (ava itself runs on Node). Each child checks its runtime.
for runtime in bun deno; do
  log "suites under $runtime"
  EXCLUSIVE_TEST_RUNTIME=$runtime npx ava --serial --tap test/runtimes.test.ts test/cli.test.ts --match '!*postgres*' --match '!*redis*' 2>&1 | tee ".tmp/$runtime.tap"
  p0=$passed f0=$failed
  count ".tmp/$runtime.tap" "$runtime"
  log "$runtime: $((passed - p0)) passed, $((failed - f0)) failed"
done

if [ "${EXCLUSIVE_SKIP_WINDOWS:-}" = 1 ]; then
  log "Windows suite skipped (EXCLUSIVE_SKIP_WINDOWS=1)"
else
  log "Windows suite under Wine"
  bash test/drivers/windows/run.sh 2>&1 | tee .tmp/windows.tap
  count .tmp/windows.tap windows
fi

echo "$passed passed, $failed failed"
[ "$failed" = 0 ] && [ "$passed" -gt 0 ]
