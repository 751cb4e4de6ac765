#!/usr/bin/env bash
# Run the checks CI runs: import-layering contracts, lint, and the test suite (no GPU needed).
set -uo pipefail
cd "$(dirname "$0")/.."
export QT_QPA_PLATFORM=${QT_QPA_PLATFORM:-offscreen} HF_HUB_OFFLINE=1 PYTHONDONTWRITEBYTECODE=1
# tiny test models: one compute thread each avoids OpenMP oversubscription when the app,
# bridge and engine threads of a test run at once (see docs/performance.md)
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} MKL_NUM_THREADS=${MKL_NUM_THREADS:-1}
.venv/bin/lint-imports || { echo "import-linter: layering contracts broken (see DESIGN.md)" >&2; exit 1; }
.venv/bin/ruff check cds_desktop plugin_bridge tests benchmarks tools || exit 1
# CDS_SLOW=1 adds the slow tests (PyInstaller bundle build + its self-test, full-size SD VAE export)
marker="not slow"; [ "${CDS_SLOW:-0}" = "1" ] && marker=""
.venv/bin/python -m pytest -q ${marker:+-m "$marker"} -p no:cacheprovider "$@"
rc=$?
if [ "$rc" -eq 5 ]; then echo "pytest collected no tests" >&2; rc=0; fi
exit "$rc"
