#!/usr/bin/env bash
# Set up and run the whole test suite (unit + integration against a real local Label Studio,
# and the report's browser test in Debian's Chromium).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Debian's chromium (the report's browser test and PDF), poppler-utils (pdfinfo: the PDF's page size) and
# postgresql (the tests that run Label Studio on PostgreSQL; verify creates and starts its own cluster)
missing=""
if ! command -v chromium >/dev/null 2>&1 && [ -z "${VERIFY_CHROMIUM:-}" ]; then missing="chromium"; fi
if ! command -v pdfinfo >/dev/null 2>&1; then missing="$missing poppler-utils"; fi
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then missing="$missing postgresql"; fi
if [ -n "$missing" ]; then
  echo "installing Debian's$missing for the report's tests…" >&2
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi
exec .venv/bin/python -m pytest "$@"
