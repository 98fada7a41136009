#!/usr/bin/env bash
# Set up (scripts/setup.sh), then lint, build the docs with warnings as errors and run the
# test suite.  Pass --slow to run the slow tests only; other arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
VENV=${VENV:-.venv}

marker="not slow"
args=()
for arg in "$@"; do
    if [ "$arg" = "--slow" ]; then marker="slow"; else args+=("$arg"); fi
done

echo "== ruff"
"$VENV/bin/ruff" check src tests benchmarks scripts examples docs
if [ "$marker" = "not slow" ]; then
    echo "== docs (sphinx, warnings are errors)"
    # the gallery's examples run at every build (docs/conf.py)
    "$VENV/bin/sphinx-build" -q -W --keep-going -b html docs docs/_build/html
fi
echo "== pytest -m \"$marker\""
set +e
"$VENV/bin/python" -m pytest -m "$marker" -n 2 --durations=15 ${args[@]+"${args[@]}"}
status=$?
set -e
# pytest exits 5 when it collected nothing (e.g. no slow tests yet): not a failure.
if [ "$status" = 5 ]; then echo "no tests selected by -m \"$marker\""; exit 0; fi
exit "$status"
