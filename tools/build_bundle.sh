#!/usr/bin/env bash
# Build the one-folder bundle dist/cds-desktop/ (PyInstaller, build.spec) and the Krita and
# GIMP plug-in zips (dist/plugins/). Uses the project's .venv (run tools/setup.sh first).
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python -m pip install -q "pyinstaller==6.22.*"
.venv/bin/pyinstaller --noconfirm --log-level WARN --distpath dist --workpath build/pyinstaller build.spec
cat > dist/cds-desktop/cds-edit <<'SH'
#!/bin/sh
# cds-edit inside the bundle: the same CLI, through the bundled executable
exec "${0%/*}/cds-desktop" --edit "$@"
SH
chmod +x dist/cds-desktop/cds-edit
.venv/bin/python tools/build_plugins.py
du -sh dist/cds-desktop dist/plugins/* 2>/dev/null
