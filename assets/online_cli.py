"""``recs-platform simulate`` and ``recs-platform online-report``: the online loop from a terminal."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from datetime import UTC, datetime

import dagster as dg
import httpx
import pandas as pd

from assets.progress import EventRouter, RunRecord, run_logging
from recs_platform.cli import Commands, movielens_dir
from recs_platform.data import movielens
from recs_platform.data.events import landed_files, write_landing_file
from recs_platform.data.warehouse import connect
from recs_platform.evaluation.metrics import parse_metric
from recs_platform.files import write_json_atomically
from recs_platform.monitoring.online import engagement_drop, online_metrics, read_online_tables
from recs_platform.online.simulator import WEEK, Day, Simulator, simulation_days, weekly_table
from recs_platform.online.store import read_pointer
from recs_platform.serving.launcher import start_server
from recs_platform.serving.model import production_registry
from recs_platform.settings import PlatformPaths

FAST = {"weeks": 1, "days": 3, "users_per_day": 8}


def cmd_online_report(args: argparse.Namespace) -> int:
    """The online metrics and the engagement verdict, computed as the online_metrics asset does."""
    from assets.resources import resources_for

    paths, resources = PlatformPaths.from_env(), resources_for()
    k = parse_metric(resources["gate"].metric)[1]
    engagement = resources["engagement"]
    with connect(paths.warehouse, read_only=True) as connection:
        feedback, requests = read_online_tables(connection)
        catalog = connection.execute("select count(*) from stg_items").fetchone()[0] if len(requests) else 0
    table = online_metrics(feedback, requests, k, catalog)
    verdict = engagement_drop(feedback, k, engagement.margin, engagement.min_requests, engagement.baseline_days)
    if args.json:
        print(json.dumps({"metrics": json.loads(table.to_json(orient="records")), "engagement": asdict(verdict)}))
    else:
        print(table.to_markdown(index=False, floatfmt=".4f") if len(table) else "nothing served yet")
        print(f"\nengagement alarm: {'FAIL' if verdict.dropped else 'ok'}: {verdict.description}")
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    """Replay MovieLens week by week against the API; see ``recs_platform.online.simulator``."""
    paths = PlatformPaths.from_env()
    try:
        data = movielens.read(movielens.ensure(movielens_dir(args.source), allow_download=True))
    except movielens.MovieLensUnavailable as reason:
        print(f"simulate replays MovieLens-100K, which is unavailable: {reason}", file=sys.stderr)
        return 1
    start = data.events.timestamp.min().normalize() + args.start_week * WEEK
    weeks, users_per_day = (FAST["weeks"], FAST["users_per_day"]) if args.fast else (args.weeks, args.users_per_day)
    inprocess = args.inprocess or args.fast
    log = paths.logs / f"simulate-{datetime.now():%Y%m%d-%H%M%S}.log"
    out = sys.stdout  # the runs' own output goes to the log, unless --verbose

    def say(line: str) -> None:
        print(line, file=out, flush=True)

    with run_logging(log, EventRouter(RunRecord(), None, say), args.verbose) as loggers:
        report = simulate(args, data, start, weeks, users_per_day, InProcessGraph(loggers) if inprocess else None, say)
    say(report["table"])
    say(f"\nretrains: {len(report['retrains'])}")
    for retrain in report["retrains"]:
        say(f"  {retrain}")
    say(f"full log: {log}")
    return 0


def simulate(
    args: argparse.Namespace,
    data: movielens.MovieLens,
    start: pd.Timestamp,
    weeks: int,
    users_per_day: int | None,
    graph: InProcessGraph | None,
    say: Callable[[str], None],
) -> dict:
    """Warm up an empty home, replay the days, and write ``online/simulation.json``."""
    paths = PlatformPaths.from_env()
    if not landed_files(paths.landing, "events"):
        warm_up(data, start, paths, graph, say)
    days = list(simulation_days(data.events, start, weeks))[: FAST["days"] if args.fast else None]
    last_of_week = {max(d.date for d in days if d.week == w) for w in {d.week for d in days}}
    retrains: list[dict] = []
    started = datetime.now(UTC)

    def settle(day: Day) -> None:
        if graph is None:
            wait_for_online_store(paths, args.settle_timeout_s, say)
        else:
            graph.ingest_events()
            if day.date in last_of_week:
                retrains.append({"week": day.week, **graph.end_of_week()})
                wait_for_champion(url, paths, args.settle_timeout_s, say)

    with api_url(args.api, paths, start_own=graph is not None) as url:
        served = Simulator(url, paths.landing, settle, args.k, users_per_day, log=say).run(days, "ml100k")
    if graph is None:
        retrains = daemon_retrains(started)
    table = weekly_table(served, data.events, args.k)
    report = {"weeks": json.loads(table.to_json(orient="records")), "retrains": retrains}
    write_json_atomically(paths.online / "simulation.json", report)
    return {**report, "table": table.to_markdown(index=False, floatfmt=".4f")}


def warm_up(
    data: movielens.MovieLens,
    start: pd.Timestamp,
    paths: PlatformPaths,
    graph: InProcessGraph | None,
    say: Callable[[str], None],
) -> None:
    """Land the catalogs and every event before ``start``; in-process, train the first model."""
    movielens.write_catalogs(data, paths.landing)
    for name, frame in movielens.daily_event_files(data.events[data.events.timestamp < start]):
        write_landing_file(frame, paths.landing, "events", name)
    say(f"landed the catalogs and the events before {start:%Y-%m-%d}; training the first model")
    if graph is not None:
        graph.train("initial model")


class InProcessGraph:
    """The graph driven from this process, for runs without a Dagster daemon (CI, ``--fast``)."""

    def __init__(self, loggers: dict) -> None:
        from assets.definitions import build_definitions

        self.defs = build_definitions()
        self.instance = dg.DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else dg.DagsterInstance.ephemeral()
        self.loggers = loggers

    def ingest_events(self) -> None:
        from assets.ingestion import EVENTS
        from assets.runner import ingest_landed

        ingest_landed(self.defs, self.instance, PlatformPaths.from_env(), EVENTS, {"loggers": self.loggers})

    def train(self, reason: str, tags: dict[str, str] | None = None) -> dict:
        from assets.runner import materialize_all

        result = materialize_all(self.defs, self.instance, PlatformPaths.from_env(), tags=tags, loggers=self.loggers)
        deployed = [
            e.materialization.metadata
            for e in result.get_asset_materialization_events()
            if e.asset_key.path == ["deployment"]
        ]
        status = deployed[0]["deployment_status"].value if deployed else "refused by the gates or failed"
        return {"reason": reason, "run": result.run_id, "deployment": status}

    def end_of_week(self) -> dict:
        """Ingest the week's serving logs (online metrics, engagement alarm), then retrain: for the
        alarm when its sensor asks, else for the new data."""
        from assets.ingestion import SERVING_LOGS
        from assets.runner import ingest_landed

        ingest_landed(self.defs, self.instance, PlatformPaths.from_env(), SERVING_LOGS, {"loggers": self.loggers})
        sensor = self.defs.resolve_sensor_def("retrain_on_engagement_drop")
        request = sensor(dg.build_sensor_context(instance=self.instance))
        if isinstance(request, dg.RunRequest):
            return self.train(request.tags["retrain_reason"], tags=request.tags)
        return self.train("new data")


def wait_for_online_store(paths: PlatformPaths, timeout_s: float, say: Callable[[str], None]) -> None:
    """Until the daemon's ingestion run exported an online store newer than the files just landed."""
    landed_at = datetime.now(UTC)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        pointer = read_pointer(paths.online)
        if pointer and datetime.fromisoformat(pointer["exported_at"]) > landed_at:
            time.sleep(float(os.environ.get("RECS_RELOAD_INTERVAL_S", 2.0)) + 0.5)  # the API's next poll
            return
        time.sleep(2)
    say(f"the online store was not refreshed within {timeout_s:.0f} s; is `dagster dev` running? continuing")


def wait_for_champion(url: str, paths: PlatformPaths, timeout_s: float, say: Callable[[str], None]) -> None:
    """Until the API answers with the bundle the champion alias names, so that the next day's
    requests are not served by the previous version while the server reloads."""
    champion = production_registry(paths).production()
    deadline = time.monotonic() + timeout_s
    while champion and time.monotonic() < deadline:
        if httpx.get(f"{url}/readyz", timeout=5).json().get("serving") == champion.tag:
            return
        time.sleep(0.5)
    if champion:
        say(f"the API did not serve the champion {champion.tag} within {timeout_s:.0f} s; continuing")


def daemon_retrains(since: datetime) -> list[dict]:
    """Pipeline runs the daemon launched during the simulation, with what triggered them."""
    instance = dg.DagsterInstance.get()
    runs = instance.get_runs(dg.RunsFilter(job_name="recs_pipeline", created_after=since))
    return [
        {
            "run": run.run_id,
            "status": run.status.value,
            "reason": run.tags.get("retrain_reason")
            or (
                "new data (automation)" if run.tags.get("dagster/from_automation_condition") else "scheduled or manual"
            ),
        }
        for run in reversed(runs)
    ]


@contextlib.contextmanager
def api_url(url: str | None, paths: PlatformPaths, start_own: bool) -> Iterator[str]:
    """``url``, or a server started on this home for the simulation (in-process mode)."""
    if url is not None or not start_own:
        url = url or "http://127.0.0.1:3000"
        httpx.get(f"{url}/readyz", timeout=5).raise_for_status()
        yield url
        return
    server = start_server(paths.home, env={"RECS_SERVING_LOG_ROTATE_S": "2"})
    try:
        yield server.url
    finally:
        server.stop()


def add_online_commands(commands: Commands) -> None:
    """simulate and online-report."""
    simulate = commands.add_parser("simulate", help="replay MovieLens week by week against the API, with feedback")
    simulate.add_argument("--weeks", type=int, default=8, help="weeks to simulate")
    simulate.add_argument("--start-week", type=int, default=20, help="weeks of history landed before the simulation")
    simulate.add_argument("--users-per-day", type=int, default=None, help="cap on requests per simulated day")
    simulate.add_argument("--k", type=int, default=10, help="list length requested")
    simulate.add_argument("--api", help="API URL (default http://127.0.0.1:3000; in-process mode starts its own)")
    simulate.add_argument(
        "--inprocess", action="store_true", help="drive ingestion and retraining from this process, no daemon"
    )
    simulate.add_argument("--fast", action="store_true", help=f"a small in-process slice: {FAST}")
    simulate.add_argument("--settle-timeout-s", type=float, default=300.0, help="wait for the daemon per day")
    simulate.add_argument("--source", help="MovieLens folder (default: $RECS_MOVIELENS_DIR)")
    simulate.add_argument("--verbose", action="store_true", help="also stream the runs' Dagster events")
    simulate.set_defaults(handler=cmd_simulate)
    report = commands.add_parser("online-report", help="online metrics per model version and day")
    report.add_argument("--json", action="store_true", help="machine-readable output")
    report.set_defaults(handler=cmd_online_report)
