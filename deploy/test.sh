#!/usr/bin/env bash
# Runs every check poststelle has: formatting, lints, unit, rule and integration tests (real
# Tesseract, poppler, SQLite; a daemon is started and killed by the tests).
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/setup.sh --no-run
# Packages only the tests need: the fonts test letters are rendered with (scans are read under
# each of DejaVu Sans, Liberation Sans and Nimbus Sans: tests/it/harness TEST_FONTS), OpenLDAP,
# headless Chromium with its WebDriver server for the browser tests of the web desk, zint,
# which encodes the barcodes of the separator sheets in the stacks of tests/it/stack.rs, and the
# PostgreSQL server the store and pipeline suites run on a second time.
test_packages=(fonts-dejavu-core fonts-liberation2 fonts-urw-base35 slapd ldap-utils chromium
               chromium-driver zint postgresql)
# npm fetches axe-core (below); a Node.js from elsewhere that brings its own npm is fine.
command -v npm >/dev/null || test_packages+=(npm)
missing=()
for p in "${test_packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  echo "installing: ${missing[*]}"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# The outgoing-mail tests run a real SMTP server (aiosmtpd) and make certificates with openssl.
python3 -c "import aiosmtpd" 2>/dev/null || python3 -m pip install --quiet aiosmtpd
# The browser tests check pages with axe-core: from npm, cached outside the repository (unless
# POSTSTELLE_TEST_AXE already names an axe.min.js).
if [ -z "${POSTSTELLE_TEST_AXE:-}" ]; then
  axe_dir=/var/tmp/poststelle-axe
  export POSTSTELLE_TEST_AXE="$axe_dir/node_modules/axe-core/axe.min.js"
  [ -f "$POSTSTELLE_TEST_AXE" ] || npm install --prefix "$axe_dir" --no-audit --no-fund axe-core@4
fi
# Tesseract inside the tests: one thread each (parallelism comes from documents).
export OMP_THREAD_LIMIT=1
cargo fmt --all -- --check
cargo clippy --locked --all-targets -- -D warnings
# A real Mayan EDMS for tests/it/mayan.rs and compliance::mayan (installed from PyPI, cached),
# stopped at exit.
# A real PostgreSQL server (Debian's, as the user postgres, on a temporary data directory and a
# free loopback port) for the second run of the store and pipeline suites below.
log=$(mktemp)
trap 'rm -f "$log"; tests/services/mayan.sh stop || true; tests/services/postgres.sh stop || true' EXIT
tests/services/mayan.sh start >"$log"
tests/services/postgres.sh start >>"$log"
set -a
# shellcheck disable=SC1090
. <(grep '^POSTSTELLE_TEST_MAYAN_\|^POSTSTELLE_TEST_POSTGRES_' "$log")
set +a
# Unit tests and the one integration-test binary, tests/it (there are no doc tests). The last
# line sums them up.
# Built first, then run, so that the time of each phase is printed on its own.
t0=$SECONDS
cargo test --locked --no-run --lib --bins --tests
t1=$SECONDS
set +e
cargo test --locked --no-fail-fast --lib --bins --tests 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
# The store's tests and the pipeline suites once more, on PostgreSQL: every store of these tests
# is a new database on the server started above (POSTSTELLE_TEST_STORE, store::db::TestDb and
# tests/it/harness store_url). The pipeline suites: hot folder to DMS with SIGKILLs (daemon,
# dms_daemon), IMAP with kills and UIDVALIDITY changes, outgoing mail and digests, accounts and
# sessions, re-assignment, quarantine retry, Stichprobe, purge and erasure, the overview's
# figures, shadow model, capture records, stacks.
postgres_suites=(daemon:: imap outgoing:: auth:: reassignment:: quarantine_retry:: sample:: retention::
                 desk_dashboard:: shadow:: capture:: stack::)
POSTSTELLE_TEST_STORE=postgres cargo test --locked --no-fail-fast --lib -- store:: 2>&1 \
  | tee -a "$log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
POSTSTELLE_TEST_STORE=postgres cargo test --locked --no-fail-fast --test it -- \
  "${postgres_suites[@]}" 2>&1 | tee -a "$log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
set -e
t2=$SECONDS
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
echo "test build: $((t1 - t0)) s, test run: $((t2 - t1)) s"
# The throughput benchmark in its short form (a few letters, a small backlog) in the test
# profile: it checks that a batch is delivered as searchable PDFs and that a late letter is
# routed while a backlog drains; timings are printed, not judged (the full runs and their
# figures are in BENCHMARKS.md).
for args in "--quick" "--quick --backlog"; do
  # shellcheck disable=SC2086
  cargo test --locked --bench throughput -- $args || status=1
done
echo "short benchmarks: $((SECONDS - t2)) s"
# The campaigns in their short form (the long forms and their figures are in the README,
# "Kampagnen"): the daemon killed 10 times while 100 documents arrive (none may be lost or
# delivered twice; on SQLite, then on PostgreSQL), and 20 s of fuzzing for each of the rule
# parser, the e-mail intake and the PDF/image intake through the sandboxed workers.
t3=$SECONDS
cargo test --locked --bench crash_campaign -- --quick || status=1
POSTSTELLE_TEST_STORE=postgres cargo test --locked --bench crash_campaign -- --quick || status=1
cargo test --locked --bench fuzz -- --seconds 20 || status=1
echo "short campaigns: $((SECONDS - t3)) s"
exit "$status"
