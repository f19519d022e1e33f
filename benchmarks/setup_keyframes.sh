#!/usr/bin/env bash
# The keyframe benchmark's own tools (benchmarks/bench_keyframes.py); nothing of verify's.
#   ffmpeg             the decode reference (`ffmpeg -threads 2 … -f null -`), Debian's package
#   apt lists          so `apt-get download opencv-doc=…` can fetch the clips' Debian package
#   .venv-scenedetect  PySceneDetect in its own venv (it bundles its own OpenCV build);
#                      bench_frames.py uses the same one
# Run as root (apt); safe to run again.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
apt-get update -qq
command -v ffmpeg >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ffmpeg
if [ ! -x "$here/.venv-scenedetect/bin/python" ]; then
    python3 -m venv "$here/.venv-scenedetect"
fi
# an existing venv with `scenedetect` (bench_frames.py's docstring) is kept: adding the headless
# build beside it would install a second OpenCV
"$here/.venv-scenedetect/bin/python" -c "import scenedetect" 2>/dev/null \
    || "$here/.venv-scenedetect/bin/pip" install -q "scenedetect-headless==0.7.2"
"$here/.venv-scenedetect/bin/python" -c "import scenedetect; print('PySceneDetect', scenedetect.__version__)"
ffmpeg -version | head -1
