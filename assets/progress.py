"""Graph runs as a person follows them, built from the runs' Dagster events.

``RunRecord`` folds the events of one or more runs into one outcome per top-level node of the
job (an asset, a graph-backed asset, a multi-asset or a check). ``ProgressDisplay`` shows a
live line (nodes done of the total, the current one, elapsed time, time left) and one dbt-style
line per finished node; on a pipe it prints only those lines. In-process runs hand their events
to the ``run_events`` logger, which ``run_logging`` routes to the record, the display and a log
file; a run launched elsewhere (by the daemon) is followed through the instance with ``follow_run``.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import logging
import re
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import dagster as dg
from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, SpinnerColumn, Task, TextColumn, TimeElapsedColumn
from rich.text import Text

from recs_platform.console import console_for, is_interactive, one_line

if TYPE_CHECKING:
    from assets.summary import RunSummary

EVENTS_LOGGER = "recs_platform.run_events"
# dagster-dbt's notice for source tests and multi-model singular tests, which `dbt build` runs
# and logs as observations: expected here, and nothing a person running the graph can act on.
KNOWN_NOTICES = ("Logging an `AssetObservation` instead of an `AssetCheckResult`",)


@dg.logger(description="Hands every event and message of the run to the command line (progress, log file).")
def run_events(init_context: dg.InitLoggerContext) -> logging.Logger:
    """The Python logger ``recs_platform.run_events``; ``run_logging`` attaches its handlers."""
    logger = logging.getLogger(EVENTS_LOGGER)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    return logger


def node_of(step_key: str) -> str:
    """The top-level node of a step: ``bpr_model.bpr_train[c0_ab12]`` → ``bpr_model``."""
    return step_key.split(".", 1)[0].split("[", 1)[0]


def metadata_values(materialization: dg.AssetMaterialization) -> dict[str, Any]:
    return {key: getattr(value, "value", value) for key, value in materialization.metadata.items()}


@dataclass
class NodeOutcome:
    """What one top-level node of a job did: its materializations, check results, failure and time."""

    name: str
    status: str = "RUNNING"
    seconds: float = 0.0
    finished_at: float | None = None
    materialized: dict[str, dict[str, Any]] = field(default_factory=dict)
    checks: list[dg.AssetCheckEvaluation] = field(default_factory=list)
    failure: str | None = None
    step_started_at: float = 0.0
    step_produced: bool = False

    @property
    def label(self) -> str:
        """The asset or check a person knows, else the node's name."""
        if len(self.materialized) == 1:
            return next(iter(self.materialized))
        if not self.materialized and len(self.checks) == 1:
            return self.checks[0].check_name
        return self.name

    def verdict(self) -> str:
        """OK or PASS; WARN when only warning-severity checks (or an asset's own checks) failed; else FAIL."""
        failed = [check for check in self.checks if not check.passed]
        if not failed:
            return "OK" if self.materialized else "PASS"
        warning_only = all(check.severity == dg.AssetCheckSeverity.WARN for check in failed)
        return "WARN" if self.materialized or warning_only else "FAIL"


@dataclass
class RunRecord:
    """Every node of the runs seen so far, in the order they finished, and how the runs ended."""

    started_at: float = field(default_factory=time.time)
    nodes: dict[str, NodeOutcome] = field(default_factory=dict)
    # In the order they finished; appended to only, so the display's refresh thread can read it.
    finished: list[NodeOutcome] = field(default_factory=list)
    run_ids: list[str] = field(default_factory=list)
    failed_runs: list[str] = field(default_factory=list)
    run_failure: str | None = None
    current: str | None = None

    def fail(self, where: str, cause: str) -> None:
        """Record a failure outside any step (e.g. definitions that do not load)."""
        self.failed_runs.append(where)
        self.run_failure = self.run_failure or one_line(cause)

    def handle(self, event: dg.DagsterEvent, at: float, run_id: str) -> NodeOutcome | None:
        """Fold one event of run ``run_id`` in; returns the node it finished, if any."""
        if event.event_type == dg.DagsterEventType.RUN_START:
            self.run_ids.append(run_id)
        if event.is_job_failure:
            self.fail(event.job_name, _error_sentence(event.job_failure_data.error))
        if not event.step_key:
            return None
        node = self.nodes.setdefault(node_of(event.step_key), NodeOutcome(node_of(event.step_key)))
        if event.is_step_start:
            self.current, node.step_started_at, node.step_produced = node.name, at, False
        elif event.is_step_materialization:
            node.materialized[event.asset_key.to_user_string()] = metadata_values(event.materialization)
            node.step_produced = True
        elif event.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION:
            node.checks.append(event.asset_check_evaluation_data)
            node.step_produced = True
        elif event.is_step_success:
            node.seconds += at - node.step_started_at
            if node.step_produced:
                return self._finish(node, node.verdict(), at)
        elif event.is_step_failure:
            node.seconds += at - node.step_started_at
            node.failure = _failure_cause(node, event)
            return self._finish(node, "FAIL", at)
        elif event.is_step_skipped:
            return self._finish(node, "SKIP", at)
        return None

    def _finish(self, node: NodeOutcome, status: str, at: float) -> NodeOutcome:
        node.status, node.finished_at = status, at
        self.finished.append(node)
        return node

    @property
    def failure(self) -> tuple[str, str] | None:
        """(the failing asset or check, its one-sentence cause) of the first failure, if any."""
        failed = [node for node in self.finished if node.failure]
        if failed:
            return failed[0].label, failed[0].failure
        if self.failed_runs:
            return self.failed_runs[0], self.run_failure or "the run failed"
        return None

    def costs(self) -> dict[str, float]:
        """Wall seconds each finished node added, from the previous finish (or the start) to its own.

        Events reach the record in the order they are read, which across steps and runs need not be
        the order they happened in, so the finishes are sorted first; a node finished again by a
        later run of the session appears once."""
        costs, previous = {}, self.started_at
        unique = {node.name: node for node in self.finished}.values()
        for node in sorted(unique, key=lambda node: node.finished_at):
            costs[node.name] = max(node.finished_at - previous, 0.0)
            previous = max(previous, node.finished_at)
        return costs


def _failure_cause(node: NodeOutcome, event: dg.DagsterEvent) -> str:
    failed_checks = [check for check in node.checks if not check.passed]
    if failed_checks:
        return one_line(_describe(failed_checks))
    data = event.step_failure_data
    if data.user_failure_data and data.user_failure_data.description:
        return one_line(data.user_failure_data.description)
    return _error_sentence(data.error)


def _describe(checks: list[dg.AssetCheckEvaluation]) -> str:
    return "; ".join(f"{check.check_name}: {check.description}" for check in checks)


def _error_sentence(error: Any) -> str:
    """The root exception of a Dagster error as ``Type: message`` on one line."""
    if error is None:
        return "unknown error"
    while error.cause is not None:
        error = error.cause
    return one_line(re.sub(r"^[\w.]*\.(\w+):", r"\1:", error.message.strip()))


@dataclass
class Estimate:
    """Time left, from what each node cost in the last successful run in this home."""

    previous: dict[str, float]

    @classmethod
    def load(cls, path: Path) -> Estimate:
        return cls(json.loads(path.read_text())["nodes"] if path.exists() else {})

    @staticmethod
    def save(path: Path, record: RunRecord) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"nodes": record.costs()}, indent=1))

    @property
    def total(self) -> float:
        return sum(self.previous.values())

    def remaining(self, record: RunRecord, now: float) -> float | None:
        if not self.previous:
            return None
        done = list(record.finished)
        names = {node.name for node in done}
        left = sum(cost for name, cost in self.previous.items() if name not in names)
        since = now - (done[-1].finished_at if done else record.started_at)
        return max(left - since, 0.0)


def duration(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes}m {seconds:02d}s" if minutes else f"{seconds}s"


class TimeLeftColumn(ProgressColumn):
    """``~1m 05s left`` from the estimate, or nothing on a first run."""

    def __init__(self, estimate: Estimate, record: RunRecord) -> None:
        super().__init__()
        self.estimate, self.record = estimate, record

    def render(self, task: Task) -> Text:
        left = self.estimate.remaining(self.record, time.time())
        return Text("" if left is None else f"~{duration(left)} left", style="cyan")


class ProgressDisplay:
    """A live line on a terminal and one line per finished node; plain lines elsewhere."""

    def __init__(self, console: Console, total: int, estimate: Estimate, record: RunRecord, live: bool) -> None:
        self.console, self.total, self.estimate, self.record = console, total, estimate, record
        self.progress = None
        if live:
            self.progress = Progress(
                SpinnerColumn(),
                TextColumn("[bold]{task.completed}/{task.total}"),
                BarColumn(bar_width=24),
                TextColumn("{task.description}"),
                TimeElapsedColumn(),
                TimeLeftColumn(estimate, record),
                console=console,
                transient=True,
                # stdout is the log file while a run is going (dbt writes there); leave it so.
                redirect_stdout=False,
            )
            self.task = self.progress.add_task("loading the asset graph", total=total)

    def __enter__(self) -> ProgressDisplay:
        left = f"; about {duration(self.estimate.total)} left (as long as the last successful run)"
        self.console.print(f"Running {self.total} steps{left if self.estimate.previous else ''}. Ctrl-C stops.")
        if self.progress:
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress:
            self.progress.stop()

    def started(self, node: str) -> None:
        if self.progress:
            self.progress.update(self.task, description=node.replace("__", "/"))

    def finished(self, node: NodeOutcome) -> None:
        done = len(self.record.finished)
        if self.progress:
            self.progress.update(self.task, completed=min(done, self.total))
        style = {"OK": "green", "PASS": "green", "WARN": "yellow", "FAIL": "red", "SKIP": "yellow"}[node.status]
        width = len(str(self.total))
        line = Text(f"{done:>{width}} of {self.total} ")
        line.append(f"{node.status:<4}", style=style)
        line.append(f" {node.label} ".ljust(40, "."))
        line.append(f" [{node.seconds:6.1f}s] {node.failure or figure(node)}")
        line.rstrip()
        self.console.print(line, overflow="ellipsis", no_wrap=True)


def figure(node: NodeOutcome) -> str:
    """The one figure that matters for a finished node."""
    metas = list(node.materialized.values())
    failed = [check for check in node.checks if not check.passed]
    if not metas:
        if len(node.checks) == 1:
            return node.checks[0].description or ""
        if failed:
            return _describe(failed)
        return f"{len(node.checks)} of {len(node.checks)} passed: {', '.join(c.check_name for c in node.checks)}"
    if len(metas) > 2:
        passed = sum(check.passed for check in node.checks)
        return f"{len(metas)} models, {passed} of {len(node.checks)} tests passed"
    if len(metas) == 2:
        return ", ".join(f"{key} {meta.get('dagster/row_count', 0):,} rows" for key, meta in node.materialized.items())
    return _asset_figure(metas[0])


def _asset_figure(meta: dict[str, Any]) -> str:
    valid = next((key for key in meta if key.startswith("valid_")), None)
    test = next((key for key in meta if key.startswith("test_")), None)
    if "rows_loaded" in meta and not meta["files_ingested"]:
        return f"no new files ({meta['files_already_ingested']} already ingested)"
    if "rows_loaded" in meta:
        return f"{meta['rows_loaded']:,} rows loaded, {meta['rows_quarantined']:,} quarantined"
    if "rows_train" in meta:
        return f"version {meta['dataset_version']}, {meta['rows_train']:,} train rows"
    if "chosen_config" in meta and valid:
        return f"{meta['chosen_config']}  {valid.replace('_', ' ', 1)} {meta[valid]:.4f}"
    if "recommender" in meta and test:
        return f"{meta['recommender']}  {test.replace('_', ' ', 1)} {meta[test]:.4f}"
    if "metric" in meta:
        suffix = f"_test_{meta['metric']}"
        tests = {key.removesuffix(suffix): value for key, value in meta.items() if key.endswith(suffix)}
        best = max(tests, key=tests.get)
        return f"best on test: {best} {meta['metric']} {tests[best]:.4f}"
    if "tag" in meta:
        return f"{meta['deployment_status'].replace('_', ' ')} {meta['tag']}"
    if "best_baseline" in meta:
        return f"best baseline {meta['best_baseline']}"
    return ""


class EventRouter(logging.Handler):
    """Hands each record of the ``run_events`` logger to the run record and the display."""

    def __init__(self, record: RunRecord, display: ProgressDisplay | None, on_warning: Callable[[str], None]) -> None:
        super().__init__(logging.DEBUG)
        self.record, self.display, self.on_warning = record, display, on_warning

    def emit(self, log_record: logging.LogRecord) -> None:
        # Dagster attaches its structured metadata (and the event, if any) to every record it logs.
        meta = getattr(log_record, "dagster_meta", {}) or {}
        event = meta.get("dagster_event")
        if event is None:
            message = meta.get("orig_message", log_record.getMessage())
            # Errors arrive as failure events; Dagster's error messages only repeat what they caused.
            if log_record.levelno == logging.WARNING and not message.startswith(KNOWN_NOTICES):
                self.on_warning(message)
            return
        finished = self.record.handle(event, log_record.created, meta.get("run_id"))
        if self.display and event.is_step_start:
            self.display.started(self.record.current)
        if self.display and finished:
            self.display.finished(finished)


def follow_run(instance: dg.DagsterInstance, run_id: str, router: EventRouter, poll_s: float = 1.0) -> dg.DagsterRun:
    """Feed the events of a run launched elsewhere (e.g. by the daemon) to ``router`` until it ends."""
    cursor = None
    while True:
        run = instance.get_run_by_id(run_id)
        connection = instance.get_records_for_run(run_id, cursor=cursor)
        for entry in connection.records:
            router.emit(_as_log_record(entry.event_log_entry))
        cursor = connection.cursor
        if run.is_finished and not connection.has_more:
            return run
        if not connection.has_more:
            time.sleep(poll_s)


def _as_log_record(entry: dg.EventLogEntry) -> logging.LogRecord:
    """A stored event in the shape Dagster's loggers receive."""
    record = logging.makeLogRecord({"levelno": entry.level, "msg": entry.message, "created": entry.timestamp})
    record.dagster_meta = {"dagster_event": entry.dagster_event, "run_id": entry.run_id, "orig_message": entry.message}
    return record


@contextlib.contextmanager
def run_logging(log: Path, router: EventRouter, verbose: bool) -> Iterator[dict[str, Any]]:
    """Route every event of the runs started inside the block to ``log`` and to ``router``; yields
    the run config's ``loggers`` section for those runs. dbt's console output (which dagster-dbt writes to
    stdout) and Python warnings go to the log too, unless ``verbose`` brings them to the terminal."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a", encoding="utf-8", buffering=1) as stream:
        to_file = logging.StreamHandler(stream)
        to_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        events, py_warnings = logging.getLogger(EVENTS_LOGGER), logging.getLogger("py.warnings")
        for handler in (to_file, router):
            events.addHandler(handler)
        loggers = {"run_events": {}} | ({"console": {"config": {"log_level": "DEBUG"}}} if verbose else {})
        with contextlib.ExitStack() as quiet:
            if not verbose:
                logging.captureWarnings(True)
                py_warnings.addHandler(to_file)
                quiet.enter_context(contextlib.redirect_stdout(stream))
            try:
                yield loggers
            finally:
                for handler in (to_file, router):
                    events.removeHandler(handler)
                py_warnings.removeHandler(to_file)
                logging.captureWarnings(False)
                sys.stdout.flush()


@dataclass
class Terminal:
    """Where a graph command reports: a progress display and a summary, or one JSON document."""

    stream: TextIO
    verbose: bool = False
    json: bool = False

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Terminal:
        return cls(sys.stdout, verbose=getattr(args, "verbose", False), json=getattr(args, "json", False))

    @functools.cached_property
    def console(self) -> Console:
        return console_for(self.stream)

    def display(self, total: int, estimate: Estimate, record: RunRecord) -> ProgressDisplay | None:
        """None with ``--json``; plain lines with ``--verbose`` (the event stream scrolls) or off a terminal."""
        if self.json:
            return None
        live = is_interactive(self.stream) and not self.verbose
        return ProgressDisplay(self.console, total, estimate, record, live)

    def warn(self, message: str) -> None:
        if self.json:
            print(f"warning: {one_line(message)}", file=sys.stderr)
        else:
            self.console.print(Text(f"warning: {one_line(message)}", style="yellow"), soft_wrap=True)

    def finish(self, summary: RunSummary) -> int:
        """Print the summary (and the failure, last); the exit status."""
        if self.json:
            print(summary.as_json(), file=self.stream)
        else:
            with self.console.capture() as table:
                summary.render(self.console)
            # Tables pad every cell; trailing blanks only get in the way of a reader's grep.
            self.stream.write("".join(line.rstrip() + "\n" for line in table.get().splitlines()))
            if summary.failure:
                self.console.print(Text(summary.failure_sentence(), style="bold red"), soft_wrap=True)
        return 0 if summary.succeeded else 1
