#!/usr/bin/env bash
# Create .venv (if needed) and install verify with the local Label Studio and the test tools.
# Re-runs skip pip when setup.cfg and pyproject.toml have not changed since the last install.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.verify-installed
want=$(cat setup.cfg pyproject.toml | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] || ! .venv/bin/python -c "import verify, label_studio" 2>/dev/null; then
  echo "installing verify and Label Studio into .venv (about a minute the first time)…" >&2
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[server,test]' 2>&1 \
    | grep -vE "is ignored: it is neither a file nor a directory" >&2 || true
  .venv/bin/python -c "import verify, cv2, label_studio_sdk, label_studio" \
    || { echo "setup failed: verify or Label Studio did not install" >&2; exit 1; }
  echo "$want" > "$stamp"
fi
# The report draws box labels with DejaVu Sans (Pillow's own font has no "×"): Debian's fonts-dejavu-core.
if [ ! -f /usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian's fonts-dejavu-core for the report's box labels…" >&2
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq fonts-dejavu-core >/dev/null; } \
    || echo "could not install fonts-dejavu-core: box labels fall back to Pillow's font (× shown as x)" >&2
fi
# `verify server start --database postgresql` runs Label Studio on Debian's PostgreSQL (a cluster verify creates).
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian's postgresql for \`verify server start --database postgresql\`…" >&2
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >/dev/null; } \
    || echo "could not install postgresql: only \`verify server start --database sqlite\` will work" >&2
fi
