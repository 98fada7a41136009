"""Print the figures of docs/reliability.md: what the reliability tests try.

Usage::

    python scripts/reliability_counts.py            # the default suite's tests
    python scripts/reliability_counts.py --slow     # also the long fuzzing runs

Runs ``tests/test_reliability.py``, ``tests/test_cli_output.py`` and
``tests/test_fuzz.py`` with ``LATENTAUDIT_RELIABILITY_COUNTS`` set, so each test records
the cases, kill points and fuzz examples it tried (``tests/_reliability.py``), then adds
them up and prints a Markdown table.  The tests must pass; their exit status is returned.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = ["tests/test_reliability.py", "tests/test_cli_output.py", "tests/test_fuzz.py"]
KINDS = {"case": "issue-16 cases run as tests", "kill_point": "kill points",
         "fuzz_example": "fuzz examples"}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slow", action="store_true", help="also the long fuzzing runs")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        counts_file = Path(folder) / "counts.jsonl"
        env = {**os.environ, "LATENTAUDIT_RELIABILITY_COUNTS": str(counts_file)}
        marker = [] if args.slow else ["-m", "not slow"]
        status = subprocess.call([sys.executable, "-m", "pytest", "-q", "-p", "no:xdist",
                                  "-p", "no:cacheprovider", *marker, *TESTS], cwd=ROOT,
                                 env=env)
        lines = counts_file.read_text().splitlines() if counts_file.exists() else []
    totals: collections.Counter = collections.Counter()
    tests: dict = collections.defaultdict(set)
    for line in lines:
        record = json.loads(line)
        totals[record["kind"]] += record["n"]
        tests[record["kind"]].add(record["test"])
    print("\n| what | count | distinct |\n|---|---|---|")
    for kind, label in KINDS.items():
        print(f"| {label} | {totals[kind]} | {len(tests[kind])} |")
    print(f"\n(pytest exit status {status}; {'with' if args.slow else 'without'} the slow "
          f"tests)")
    return status


if __name__ == "__main__":
    sys.exit(main())
