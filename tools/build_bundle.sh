#!/usr/bin/env bash
# Kept for existing habits: the bundle build is tools/build_bundle.py (Linux, macOS, Windows).
exec "${PYTHON:-python3}" "$(dirname "$0")/build_bundle.py" "$@"
