#!/usr/bin/env bash
# Kept for existing habits: the checks are tools/test.py (the same on Linux, macOS and Windows).
exec "${PYTHON:-python3}" "$(dirname "$0")/test.py" "$@"
