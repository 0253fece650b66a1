"""``recs-platform``: the library's commands plus the ones that run the asset graph.

recs-platform import movielens --source DIR   MovieLens-100K → landing zone (daily files)
recs-platform replay movielens --step week    drop MovieLens into the landing zone a week at a time
recs-platform synth --users N --items N --events N   synthetic logs → landing zone
recs-platform bootstrap                       MovieLens if available, else synthetic (said loudly)
recs-platform run                             materialize the whole asset graph once
recs-platform serve --port 3000               the BentoML prediction API
recs-platform status | rollback               the production pointer (deploys only go through the gates)
recs-platform demo                            bootstrap, run, then Dagster UI + daemon + API
recs-platform simulate --weeks 8              replay MovieLens against the API, with feedback
recs-platform online-report [--json]          online metrics per model version and day
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from assets.online_cli import add_online_commands
from recs_platform.cli import Commands, build_parser, cmd_bootstrap, serve_command, serving_env
from recs_platform.evaluation.gates import GATES
from recs_platform.settings import PlatformPaths
from recs_platform.supervisor import Supervisor, stop_on_signals

REPO_ROOT = Path(__file__).resolve().parent.parent


def cmd_run(args: argparse.Namespace) -> int:
    """Ingest every landed file and materialize the graph once, recorded in the Dagster instance."""
    import dagster as dg

    from assets.definitions import defs
    from assets.runner import materialize_all

    instance = dg.DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else dg.DagsterInstance.ephemeral()
    result = materialize_all(defs, instance, PlatformPaths.from_env())
    for evaluation in result.get_asset_check_evaluations():
        if evaluation.check_name in GATES:
            print(f"gate {evaluation.check_name}: {'PASS' if evaluation.passed else 'FAIL'} {evaluation.description}")
    print(f"pipeline run {result.run_id}: {'succeeded' if result.success else 'FAILED'}")
    return 0 if result.success else 1


def dagster_dev_command(port: int) -> list[str]:
    dagster = str(Path(sys.executable).parent / "dagster")
    return [dagster, "dev", "-w", str(REPO_ROOT / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(port)]


def cmd_demo(args: argparse.Namespace) -> int:
    """Bootstrap and run the graph, then keep the Dagster UI, its daemon and the API running until
    Ctrl-C or SIGTERM, which stop all of them."""
    if cmd_bootstrap(args) != 0 or cmd_run(args) != 0:
        return 1
    env = serving_env()
    with stop_on_signals(Supervisor()) as children:
        children.start("api", serve_command("127.0.0.1", args.api_port), env)
        children.start("ui", dagster_dev_command(args.ui_port), env)
        print(
            f"\nDagster UI (webserver + daemon): http://127.0.0.1:{args.ui_port}\n"
            f"Recommendation API:              http://127.0.0.1:{args.api_port}/recommend  "
            f"(try: curl -X POST -H 'content-type: application/json' -d '{{\"user_id\": 1, \"k\": 5}}' "
            f"http://127.0.0.1:{args.api_port}/recommend)\nPress Ctrl-C to stop.",
            flush=True,
        )
        stopped = children.wait_any()
        print(f"{stopped} exited; stopping the others", file=sys.stderr)
    return 0


def add_graph_commands(commands: Commands) -> None:
    """run and demo: the commands that need Dagster."""
    commands.add_parser("run", help="materialize the whole asset graph once").set_defaults(handler=cmd_run)
    demo = commands.add_parser("demo", help="bootstrap, run the graph, then start the Dagster UI, daemon and API")
    demo.add_argument("--source", help="MovieLens folder (default: $RECS_MOVIELENS_DIR)")
    demo.add_argument("--ui-port", type=int, default=3001, help="Dagster UI port")
    demo.add_argument("--api-port", type=int, default=3000, help="API port")
    demo.set_defaults(handler=cmd_demo)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser(add_graph_commands, add_online_commands, epilog=__doc__.split("\n\n", 1)[1])
    args = parser.parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
