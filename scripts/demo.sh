#!/usr/bin/env bash
# The main job on the embedded default: set up, start a local Label Studio (SQLite, loopback),
# and run the verification loop on the seed case's fixture footage. Safe to run again: nothing
# is duplicated. Settings: VERIFY_PORT (default 8080), VERIFY_DEMO_DIR (default ./demo),
# VERIFY_HOME (where the local server keeps its data; default ~/.local/share/verify).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
V=.venv/bin/verify
DEMO=${VERIFY_DEMO_DIR:-demo}
WS="$DEMO/workspace"
export VERIFY_WORKSPACE="$WS"
unset LABEL_STUDIO_URL LABEL_STUDIO_API_KEY VERIFY_FILES_ROOT  # use the local server

echo "== footage: generating the seed case's synthetic fixture videos"
.venv/bin/python -m fixtures.generate "$DEMO/footage" >/dev/null
echo "== Label Studio"
$V server start ${VERIFY_PORT:+--port "$VERIFY_PORT"}
echo "== workspace"
$V init configs/spin-boldak-2021.yaml
$V ingest "$DEMO/footage/flag_afghan_side.mp4" --source flag-hoisting-afghan-side
$V ingest "$DEMO/footage/flag_pakistani_side.mp4" --source flag-hoisting-pakistani-side
$V ingest "$DEMO/footage/militants_at_gate.mp4" --source militants-at-gate
$V ingest "$DEMO/footage/civilians_refused_vertical.mp4" --source civilians-refused
$V frames
echo "== reviewer accounts"
for reviewer in reviewer1@verify.local reviewer2@verify.local; do
  if ! $V reviewers list | grep -q " $reviewer "; then
    $V reviewers add "$reviewer" >/dev/null
  fi
done
echo "== sync: push frames, pull annotations, merge, report"
$V sync
echo
.venv/bin/python - <<'PY'
import json, os
from verify.labelstudio import server
creds = server.credentials()
print(f"Reviewers log in at {creds['url']}/user/login/ :")
for r in creds.get("reviewers", []):
    print(f"  {r['email']}  password {r['password']}")
print(f"(admin: {creds['admin_email']}; all local logins are in {server.home() / 'credentials.json'}, mode 600)")
ws = os.environ["VERIFY_WORKSPACE"]
print(f"After they label, run: .venv/bin/verify -w {ws} sync")
print(f"Report: {os.path.abspath(os.path.join(ws, 'reports', 'report.html'))}")
PY
