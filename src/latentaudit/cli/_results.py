"""Writing a command's results: embeddings, the report, the summary printed at the end."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path

from ..pipeline import AUDIT_DEFAULTS
from ._run import Run

__all__ = ["audit_options", "embed_and_save", "print_summary", "write_report"]


def audit_options(config: dict) -> dict:
    """The audit's sections of a run's configuration (the options of run_audit)."""
    return {key: config[key] for key in AUDIT_DEFAULTS}


def embed_and_save(encoder, dataset, config: dict, run: Run, folder: Path,
                   aggregate: str | None, provenance: Mapping | None = None):
    """Embed ``dataset`` with the run's ``[embed]`` options and save into ``folder`` (None:
    compute only, as the other processes of a torchrun launch do)."""
    from ..embed import embed
    from ..training import world_size

    # Under torchrun every process keeps its shard there until all are merged, so a run
    # started again after a process died redoes that shard alone.
    shard_dir = Path(config["output"]) / "embed-shards" if world_size() > 1 else None
    embeddings = embed(encoder, dataset, batch_size=config["embed"]["batch_size"],
                       device=config["device"], aggregate=aggregate,
                       combine=config["embed"]["combine"],
                       verbose=run.verbose, shard_dir=shard_dir)
    embeddings.provenance.update(provenance or {})
    if folder is not None:
        embeddings.save(folder, overwrite=True)
    return embeddings


def write_report(report, run: Run) -> Path:
    """Save the report (HTML, JSON, subjects.csv) in the output folder, with timings."""
    report.provenance.setdefault("command", run.command_line())
    report.provenance["timings_seconds"] = {**run.timings,
                                            **report.provenance.get("timings_seconds", {}),
                                            "total": round(time.perf_counter() - run.started,
                                                           3)}
    return report.save(run.output)


def print_summary(report, path: Path) -> None:
    """The top findings, the label issues and the failed sections, then the run's wall
    time and the report's path."""
    overview = {s.key: s for s in report.sections}.get("overview")
    if overview is not None and overview.items:
        print("Top findings:")
        for item in overview.items[:3]:
            print(f"  - {item}")
    issues = {s.key: s for s in report.sections}.get("label_issues")
    if issues is not None and issues.items:
        for item in issues.items:
            print(f"  - {item}")
    failed = [s.title for s in report.sections if s.status == "failed"]
    if failed:
        print(f"Sections that failed (see the report): {', '.join(failed)}")
    total = report.provenance.get("timings_seconds", {}).get("total")
    if total is not None:
        minutes, seconds = divmod(round(float(total)), 60)
        print(f"done in {minutes} min {seconds:02d} s (wall clock; stage times in "
              f"report.json, provenance.timings_seconds)")
    print(f"report: {path.resolve()}")
