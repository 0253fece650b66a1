"""The closing summary of graph runs: data, recommenders, gates, deployment, time and log.

Built from a ``RunRecord``, whether the runs' events arrived live (``recs-platform run``) or are
read back from the Dagster instance by run id (``summary_of_runs``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from assets.progress import RunRecord, duration
from recs_platform.evaluation.gates import GATES

COLUMN_GAP = 3  # what rich's SIMPLE_HEAD box puts between two columns
MIN_CONFIGURATION, MAX_CONFIGURATION = 12, 60


@dataclass
class RunSummary:
    """What a person needs after a run; ``as_json`` holds the same figures as ``render``."""

    succeeded: bool
    run_ids: list[str]
    data_version: str | None
    rows: dict[str, int]
    metric: str | None
    recommenders: list[dict[str, Any]]
    gates: list[dict[str, Any]]
    deployment: dict[str, Any]
    failure: dict[str, str] | None
    seconds: float
    log: str
    links: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_record(cls, record: RunRecord, seconds: float, log: Path) -> RunSummary:
        assets = {key: meta for node in record.nodes.values() for key, meta in node.materialized.items()}
        report = assets.get("evaluation_report", {})
        metric = report.get("metric")
        gates = [
            {"name": check.check_name, "passed": check.passed, "reason": check.description}
            for node in record.nodes.values()
            for check in node.checks
            if check.check_name in GATES
        ]
        failure = record.failure
        return cls(
            succeeded=bool(record.run_ids) and not record.failed_runs,
            run_ids=record.run_ids,
            data_version=assets.get("dataset", {}).get("dataset_version"),
            rows=_rows(assets.get("raw/events", {})),
            metric=metric,
            recommenders=_recommenders(assets, metric),
            gates=gates,
            deployment=_deployment(assets, gates, failure),
            failure={"step": failure[0], "cause": failure[1]} if failure else None,
            seconds=round(seconds, 1),
            log=str(log),
        )

    def as_json(self) -> str:
        return json.dumps(asdict(self), indent=2, default=str)

    def failure_sentence(self) -> str:
        return f"Run failed at {self.failure['step']}: {self.failure['cause'].rstrip('.')}. Full log: {self.log}"

    def render(self, console: Console) -> None:
        overview = Table.grid(padding=(0, 2))
        if self.data_version:
            overview.add_row("data version", self.data_version)
        if self.rows:
            overview.add_row("rows", _rows_text(self.rows))
        sections = [overview] if overview.row_count else []
        sections += [self._recommender_table(console.width)] if self.recommenders else []
        sections += [self._gate_table()] if self.gates else []
        for section in sections:
            console.print()
            console.print(section)
        console.print()
        closing = Table.grid(padding=(0, 2))
        closing.add_row("deployed", self.deployment.get("tag") or f"nothing: {self.deployment['reason']}")
        closing.add_row("total time", duration(self.seconds))
        closing.add_row("log", self.log)
        for name, link in self.links.items():
            closing.add_row(name, link)
        console.print(closing)

    def _recommender_table(self, width: int) -> Table:
        # Names and figures first and whole; the configuration, last, is cut to what the terminal
        # has left (rich would otherwise squeeze every column, figures included).
        names = [entry["name"] + (" (candidate)" if entry["candidate"] else "") for entry in self.recommenders]
        headers = [f"{split} {self.metric or ''}".strip() for split in ("valid", "test")]
        table = Table(box=box.SIMPLE_HEAD, show_edge=False)
        table.add_column("recommender", no_wrap=True)
        for header in headers:
            table.add_column(header, justify="right", no_wrap=True)
        table.add_column("configuration", no_wrap=True)
        fixed = max(map(len, names)) + sum(max(len(header), 6) for header in headers) + COLUMN_GAP * 3 + 2
        room = max(min(width - fixed, MAX_CONFIGURATION), MIN_CONFIGURATION)
        for name, entry in zip(names, self.recommenders, strict=True):
            configuration = Text(entry["configuration"])
            configuration.truncate(room, overflow="ellipsis")
            table.add_row(name, _score(entry["valid"]), _score(entry["test"]), configuration)
        return table

    def _gate_table(self) -> Table:
        table = Table(box=box.SIMPLE_HEAD, show_edge=False)
        table.add_column("gate", no_wrap=True, min_width=max((len(gate["name"]) for gate in self.gates), default=4))
        table.add_column("verdict", no_wrap=True, min_width=7)
        table.add_column("reason")
        for gate in self.gates:
            verdict = "[green]PASS[/]" if gate["passed"] else "[red]FAIL[/]"
            table.add_row(gate["name"], verdict, gate["reason"] or "")
        return table


def summary_of_runs(instance: dg.DagsterInstance, run_ids: list[str], log: Path) -> RunSummary:
    """The summary of runs stored in ``instance`` (e.g. launched by the daemon)."""
    record = RunRecord()
    entries = [entry for run_id in run_ids for entry in instance.all_logs(run_id)]
    for entry in entries:
        if entry.dagster_event is not None:
            record.handle(entry.dagster_event, entry.timestamp, entry.run_id)
    if entries:
        record.started_at = entries[0].timestamp
    return RunSummary.from_record(record, entries[-1].timestamp - record.started_at if entries else 0.0, log)


# Ingestion figures of raw/events, by their name in the summary.
ROW_FIGURES = {
    "in": "rows_in",
    "loaded": "rows_loaded",
    "quarantined": "rows_quarantined",
    "files_ingested": "files_ingested",
    "files_already_ingested": "files_already_ingested",
    "in_warehouse": "dagster/row_count",
}


def _rows(meta: dict[str, Any]) -> dict[str, int]:
    return {name: int(meta[key]) for name, key in ROW_FIGURES.items() if key in meta}


def _rows_text(rows: dict[str, int]) -> str:
    if rows.get("files_ingested"):
        text = ", ".join(f"{rows[key]:,} {key}" for key in ("in", "loaded", "quarantined") if key in rows)
        text += f" from {rows['files_ingested']} new files"
    else:
        text = "no new files"
    if rows.get("files_already_ingested"):
        text += f" ({rows['files_already_ingested']} files already ingested)"
    return text + (f"; raw.events holds {rows['in_warehouse']:,}" if "in_warehouse" in rows else "")


def _recommenders(assets: dict[str, dict[str, Any]], metric: str | None) -> list[dict[str, Any]]:
    candidate = assets.get("candidate_model", {}).get("recommender")
    report = assets.get("evaluation_report", {})
    entries = []
    for meta in assets.values():
        if "chosen_config" not in meta:
            continue
        name = meta["recommender"]
        valid_key = f"valid_{metric}" if metric else next(key for key in meta if key.startswith("valid_"))
        params = ", ".join(f"{key}={value}" for key, value in sorted((meta.get("params") or {}).items()))
        entries.append(
            {
                "name": name,
                "configuration": f"{meta['chosen_config']} {params}".strip(),
                "params": meta.get("params") or {},
                "valid": meta.get(valid_key),
                "test": report.get(f"{name}_test_{metric}"),
                "candidate": name == candidate,
            }
        )
    return sorted(entries, key=lambda entry: -(entry["test"] if entry["test"] is not None else entry["valid"] or 0))


def _deployment(assets: dict[str, dict[str, Any]], gates: list[dict[str, Any]], failure: tuple | None) -> dict:
    deployed = assets.get("deployment")
    if deployed:
        return {"deployed": True, "tag": deployed["tag"], "status": deployed["deployment_status"]}
    failed = [gate["name"] for gate in gates if not gate["passed"]]
    if failed:
        reason = f"gate {', '.join(failed)} failed; the champion keeps serving"
    elif failure:
        reason = f"the run failed at {failure[0]}"
    else:
        reason = "the deployment step did not run"
    return {"deployed": False, "tag": None, "reason": reason}


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"
