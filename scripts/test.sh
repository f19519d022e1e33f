#!/usr/bin/env bash
# Set up and run the whole test suite (unit + integration against a real local Label Studio,
# and the report's browser test in Debian's Chromium).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Debian's chromium (the report's browser test and PDF), poppler-utils (pdfinfo: the PDF's page size),
# postgresql (the tests that run Label Studio on PostgreSQL; verify creates and starts its own cluster) and
# nginx (tests/test_postgres.py runs its own nginx, on a loopback port, as the reverse proxy in front of two
# Label Studio replicas; the package's own service is not used)
missing=""
if ! command -v chromium >/dev/null 2>&1 && [ -z "${VERIFY_CHROMIUM:-}" ]; then missing="chromium"; fi
if ! command -v pdfinfo >/dev/null 2>&1; then missing="$missing poppler-utils"; fi
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then missing="$missing postgresql"; fi
if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then missing="$missing nginx"; fi
if [ -n "$missing" ]; then
  echo "installing Debian's$missing for the tests…" >&2
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
  # the package may start its own nginx on port 80; the tests start theirs, so stop the one just installed
  case " $missing " in *" nginx "*) $SUDO service nginx stop >/dev/null 2>&1 || true ;; esac
fi
exec .venv/bin/python -m pytest "$@"
