"""Counting what the reliability tests tried, for docs/reliability.md.

Tests call :func:`count`; when the environment variable ``LATENTAUDIT_RELIABILITY_COUNTS``
names a file, each call appends one JSON line to it (``scripts/reliability_counts.py``
runs the tests that way and adds the lines up).  Without the variable nothing is written.
"""

from __future__ import annotations

import json
import os

VARIABLE = "LATENTAUDIT_RELIABILITY_COUNTS"


def count(kind: str, name: str, n: int = 1) -> None:
    """Record ``n`` things of ``kind`` (``"case"``, ``"kill_point"``, ``"fuzz_example"``)
    tried by test ``name``."""
    path = os.environ.get(VARIABLE)
    if not path:
        return
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"kind": kind, "test": name, "n": int(n)}) + "\n")
