"""``recs-platform``: the library's commands plus the ones that run the asset graph.

recs-platform import movielens --source DIR   MovieLens-100K → landing zone (daily files)
recs-platform import events --events F --items F [--users F] --contract F   your own files under a contract
recs-platform replay movielens --step week    drop MovieLens into the landing zone a week at a time
recs-platform synth --users N --items N --events N   synthetic logs → landing zone
recs-platform bootstrap                       MovieLens if available, else synthetic (said loudly)
recs-platform run [--verbose | --json]        materialize the whole asset graph once, with progress and a summary
recs-platform serve --port 3000               the BentoML prediction API
recs-platform status | rollback               the production pointer (deploys only go through the gates)
recs-platform demo                            bootstrap, run, then Dagster UI + daemon + API
recs-platform simulate --weeks 8              replay MovieLens against the API, with feedback
recs-platform online-report [--json]          online metrics per model version and day
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
import traceback
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from assets.online_cli import add_online_commands
from recs_platform.cli import Commands, build_parser, cmd_bootstrap, serve_command, serving_env
from recs_platform.settings import PlatformPaths
from recs_platform.supervisor import Supervisor, stop_on_signals

if TYPE_CHECKING:
    from assets.progress import Terminal
    from assets.summary import RunSummary

REPO_ROOT = Path(__file__).resolve().parent.parent
# Per-node wall times of the last successful run in a home, for the next run's estimate.
LAST_SUCCESS = "last_successful_run.json"


def cmd_run(args: argparse.Namespace) -> int:
    """Ingest every landed file and materialize the graph once, recorded in the Dagster instance."""
    from assets.progress import Terminal

    terminal = Terminal.from_args(args)
    return terminal.finish(run_graph(PlatformPaths.from_env(), terminal))


def run_graph(home: PlatformPaths, terminal: Terminal) -> RunSummary:
    """Materialize the graph in-process behind the progress display; every event goes to a log file
    in the home. Nothing raises to the terminal unless ``--verbose``: the summary says what failed."""
    import dagster as dg

    from assets.definitions import build_definitions
    from assets.progress import Estimate, EventRouter, RunRecord, run_logging
    from assets.runner import materialize_all, planned_runs
    from assets.summary import RunSummary

    log = home.logs / f"run-{datetime.now():%Y%m%d-%H%M%S}.log"
    record = RunRecord()
    router = EventRouter(record, None, terminal.warn)
    try:
        with run_logging(log, router, terminal.verbose) as loggers:
            defs = build_definitions()
            instance = dg.DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else dg.DagsterInstance.ephemeral()
            total = sum(len(job.graph.node_names()) for job in planned_runs(defs, home))
            router.display = terminal.display(total, Estimate.load(home.logs / LAST_SUCCESS), record)
            with router.display or contextlib.nullcontext():
                materialize_all(defs, instance, home, loggers=loggers)
    except Exception as error:
        if terminal.verbose:
            raise
        with log.open("a") as stream:
            stream.write(traceback.format_exc())
        record.fail("recs-platform run", f"{type(error).__name__}: {error}")
    summary = RunSummary.from_record(record, time.time() - record.started_at, log)
    if summary.succeeded:
        Estimate.save(home.logs / LAST_SUCCESS, record)
    return summary


def dagster_dev_command(port: int) -> list[str]:
    dagster = str(Path(sys.executable).parent / "dagster")
    return [dagster, "dev", "-w", str(REPO_ROOT / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(port)]


def cmd_demo(args: argparse.Namespace) -> int:
    """Bootstrap and run the graph, then keep the Dagster UI, its daemon and the API running until
    Ctrl-C or SIGTERM, which stop all of them. Their output goes to logs in the home unless
    ``--verbose``."""
    if cmd_bootstrap(args) != 0 or cmd_run(args) != 0:
        return 1
    env, logs = serving_env(), PlatformPaths.from_env().logs
    api, ui = f"http://127.0.0.1:{args.api_port}", f"http://127.0.0.1:{args.ui_port}"
    child_logs = {} if args.verbose else {name: logs / f"{name}.log" for name in ("api", "ui")}
    with stop_on_signals(Supervisor()) as children:
        children.start("api", serve_command("127.0.0.1", args.api_port), env, child_logs.get("api"))
        children.start("ui", dagster_dev_command(args.ui_port), env, child_logs.get("ui"))
        print("\nstarting the API and the Dagster UI (webserver + daemon); about half a minute...", flush=True)
        if not children.wait_until_serving({"api": f"{api}/readyz", "ui": f"{ui}/server_info"}):
            print(f"warning: a server is not answering yet; its log is in {logs}", file=sys.stderr)
        print(demo_links(api, ui, child_logs), flush=True)
        stopped = children.wait_any()
        where = f" (its log: {child_logs[stopped]})" if stopped in child_logs else ""
        print(f"{stopped} exited{where}; stopping the others", file=sys.stderr)
    return 0


def demo_links(api: str, ui: str, child_logs: dict[str, Path]) -> str:
    """Where to look once the demo is up, printed once."""
    request = "-H 'content-type: application/json' -d '{\"user_id\": 1, \"k\": 5}'"
    logs = f"logs        {', '.join(str(path) for path in child_logs.values())}\n" if child_logs else ""
    return (
        f"\nDagster UI  {ui}   lineage, checks, runs, evaluation tables\n"
        f"API         {api}\n"
        f"  try:      curl -s -X POST {api}/recommend {request}\n"
        f"Inspect     {api}/inspect/   recommendations side by side, first items, experiments, online metrics\n"
        f"{logs}Press Ctrl-C to stop."
    )


def add_output_options(parser: argparse.ArgumentParser, json_summary: bool = True) -> None:
    """Quiet by default: a progress display and a summary; everything else on request."""
    choice = parser.add_mutually_exclusive_group()
    choice.add_argument(
        "--verbose", action="store_true", help="also stream every Dagster event and dbt's output; tracebacks"
    )
    if json_summary:
        choice.add_argument("--json", action="store_true", help="print one machine-readable summary, nothing else")


def add_graph_commands(commands: Commands) -> None:
    """run and demo: the commands that need Dagster."""
    run = commands.add_parser("run", help="materialize the whole asset graph once")
    add_output_options(run)
    run.set_defaults(handler=cmd_run)
    demo = commands.add_parser("demo", help="bootstrap, run the graph, then start the Dagster UI, daemon and API")
    demo.add_argument("--source", help="MovieLens folder (default: $RECS_MOVIELENS_DIR)")
    demo.add_argument("--ui-port", type=int, default=3001, help="Dagster UI port")
    demo.add_argument("--api-port", type=int, default=3000, help="API port")
    add_output_options(demo, json_summary=False)
    demo.set_defaults(handler=cmd_demo)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser(add_graph_commands, add_online_commands, epilog=__doc__.split("\n\n", 1)[1])
    args = parser.parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
