#!/usr/bin/env bash
# Sets poststelle up on a Debian/Ubuntu machine and runs the daemon on the example config.
#
#   deploy/setup.sh            install system packages (idempotent), build, prepare var/, serve
#   deploy/setup.sh --no-run   the same without starting the daemon
#
# Run from anywhere; works in the repository root. Needs root (or sudo) for the packages.
set -euo pipefail
cd "$(dirname "$0")/.."

run=1
[ "${1:-}" = "--no-run" ] && run=0

# Build dependencies (Tesseract/Leptonica headers, clang for bindgen), German OCR data,
# poppler (pdftoppm renders scanned PDFs), qpdf (tests make encrypted PDFs with it).
packages=(build-essential pkg-config libtesseract-dev libleptonica-dev libclang-dev clang
          tesseract-ocr tesseract-ocr-deu poppler-utils qpdf libsqlite3-dev
          python3-venv python3-dev libldap2-dev libsasl2-dev redis-server curl
          openssl python3 python3-pip dovecot-imapd)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  echo "installing: ${missing[*]}"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ "$run" = 1 ]; then
  cargo build --release --locked
fi

mkdir -p var/inbox var/processed var/quarantine var/dms var/models
if [ ! -s var/api-token ]; then
  umask 077
  head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > var/api-token
  echo "API token written to var/api-token"
fi

if [ "$run" = 1 ]; then
  ./target/release/poststelle check-config
  echo "Drop scans into var/inbox/; routed documents appear in var/dms/<mailbox-id>/."
  exec ./target/release/poststelle serve
fi
