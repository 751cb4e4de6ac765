#!/usr/bin/env bash
# Kept for existing habits: the set-up is tools/setup.py (the same on Linux, macOS and Windows).
exec "${PYTHON:-python3}" "$(dirname "$0")/setup.py" "$@"
