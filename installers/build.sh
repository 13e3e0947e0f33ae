#!/usr/bin/env bash
# Build the one-folder Segue app with PyInstaller: dist/segue/ (run dist/segue/segue).
#
#   installers/build.sh              from the repository root, in the virtualenv that has Segue
#
# Run it in Segue's virtualenv with the `build` extra (pip install -e ".[build]") and the CPU
# build of torch (the app is for machines without a GPU setup: GPU users install with pip). Put the default model
# in engine/checkpoints/<name>/ first: the app ships whatever that folder holds. Build on each
# platform for itself (PyInstaller does not cross-compile): Linux, macOS and Windows
# (Git Bash). Then check the result: python -m pytest tests/test_app.py
set -euo pipefail
cd "$(dirname "$0")/.."
if ! python -c "import PyInstaller, bridge" 2>/dev/null; then
    echo "build.sh: run it in Segue's virtualenv with the build extra: pip install -e \".[build]\"" >&2
    exit 1
fi
if [ "$(python -c 'import torch; print(torch.version.cuda is None)')" != True ]; then
    echo "build.sh: warning: this torch is a CUDA build; the app will be gigabytes larger" >&2
fi
python -m PyInstaller --noconfirm --distpath dist --workpath build/pyinstaller \
    installers/segue.spec
app=dist/segue/segue
[ -x "$app" ] || app=dist/segue/segue.exe
"$app" --version
du -sh dist/segue
