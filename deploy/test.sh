#!/usr/bin/env bash
# Runs every check poststelle has: formatting, lints, unit, rule and integration tests (real
# Tesseract, poppler, SQLite; a daemon is started and killed by the tests).
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/setup.sh --no-run
# Tesseract inside the tests: one thread each (parallelism comes from documents).
export OMP_THREAD_LIMIT=1
cargo fmt --all -- --check
cargo clippy --locked --all-targets -- -D warnings
cargo test --locked --no-fail-fast
