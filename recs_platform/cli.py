"""The ``recs-platform`` command line.

recs-platform import movielens --source DIR   MovieLens-100K → landing zone (daily files)
recs-platform synth --users N --items N --events N   synthetic logs → landing zone
recs-platform bootstrap                       MovieLens if available, else synthetic (said loudly)
recs-platform run                             materialize the whole asset graph once
recs-platform serve --port 3000               the BentoML prediction API
recs-platform status | rollback               the production pointer (deploys only go through the gates)
recs-platform demo                            bootstrap, run, then Dagster UI + daemon + API
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from recs_platform.data import movielens
from recs_platform.settings import PlatformPaths

DEFAULT_MOVIELENS_DIR = "data/ml-100k"


def _movielens_dir(value: str | None) -> Path:
    return Path(value or os.environ.get("RECS_MOVIELENS_DIR", DEFAULT_MOVIELENS_DIR))


def cmd_import(args: argparse.Namespace) -> int:
    source = movielens.ensure(_movielens_dir(args.source), allow_download=not args.no_download)
    written = movielens.import_to_landing(source, PlatformPaths.from_env().landing)
    print(f"imported MovieLens-100K from {source}: {len(written)} files in {PlatformPaths.from_env().landing}")
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    source = movielens.ensure(_movielens_dir(args.source), allow_download=not args.no_download)
    landing = PlatformPaths.from_env().landing
    for number, written in enumerate(movielens.replay_to_landing(source, landing, args.step, args.interval_s)):
        label = "catalogs" if number == 0 else f"{args.step} {number}"
        print(f"landed {label}: {len(written)} files", flush=True)
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    from recs_platform.data import synthetic

    config = synthetic.SyntheticConfig(
        n_users=args.users, n_items=args.items, n_events=args.events, seed=args.seed, days=args.days
    )
    written = synthetic.write_to_landing(synthetic.generate(config), PlatformPaths.from_env().landing)
    print(f"generated {args.events} synthetic events: {len(written)} files in {PlatformPaths.from_env().landing}")
    return 0


def cmd_bootstrap(args: argparse.Namespace) -> int:
    """Land MovieLens-100K; offline and without a local copy, land synthetic data instead."""
    try:
        source = movielens.ensure(_movielens_dir(args.source), allow_download=True)
    except movielens.MovieLensUnavailable as reason:
        banner = "=" * 78
        print(
            f"{banner}\nMovieLens-100K is unavailable ({reason}).\n"
            f"FALLING BACK TO THE BUILT-IN SYNTHETIC GENERATOR: the demo runs on synthetic data.\n{banner}"
        )
        return cmd_synth(argparse.Namespace(users=943, items=1682, events=100_000, seed=7, days=210))
    written = movielens.import_to_landing(source, PlatformPaths.from_env().landing)
    print(f"landed MovieLens-100K from {source}: {len(written)} files")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """Ingest every landed file and materialize the graph once, recorded in the Dagster instance."""
    import dagster as dg

    from assets.definitions import defs
    from assets.runner import materialize_all

    instance = dg.DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else dg.DagsterInstance.ephemeral()
    result = materialize_all(defs, instance, PlatformPaths.from_env())
    for evaluation in result.get_asset_check_evaluations():
        if evaluation.check_name in ("threshold", "beats_baselines", "no_regression"):
            print(f"gate {evaluation.check_name}: {'PASS' if evaluation.passed else 'FAIL'} {evaluation.description}")
    print(f"pipeline run {result.run_id}: {'succeeded' if result.success else 'FAILED'}")
    return 0 if result.success else 1


def cmd_serve(args: argparse.Namespace) -> int:
    command = [
        sys.executable,
        "-m",
        "bentoml",
        "serve",
        "recs_platform.serving.service:RecommenderService",
        "--host",
        args.host,
        "--port",
        str(args.port),
    ]
    return subprocess.call(command, env=_serving_env())


def _serving_env() -> dict[str, str]:
    paths = PlatformPaths.from_env()
    return {
        **os.environ,
        "RECS_HOME": str(paths.home),
        "BENTOML_HOME": str(paths.bentoml_home),
        "BENTOML_DO_NOT_TRACK": "True",
    }


def _registry():
    from recs_platform.serving.model import production_registry

    return production_registry(PlatformPaths.from_env())


def cmd_status(args: argparse.Namespace) -> int:
    registry = _registry()
    record = registry.production()
    print(json.dumps({"production": asdict(record) if record else None, "bundles": registry.tags()}, indent=2))
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    record = _registry().rollback()
    print(f"production rolled back → {record.tag}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Bootstrap and run the graph, then keep the Dagster UI, its daemon and the API running."""
    if cmd_bootstrap(args) != 0 or cmd_run(args) != 0:
        return 1
    env = _serving_env()
    api = subprocess.Popen([sys.executable, "-m", "recs_platform.cli", "serve", "--port", str(args.api_port)], env=env)
    ui = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "dagster"),
            "dev",
            "-w",
            "workspace.yaml",
            "-h",
            "127.0.0.1",
            "-p",
            str(args.ui_port),
        ],
        env=env,
    )
    print(
        f"\nDagster UI (webserver + daemon): http://127.0.0.1:{args.ui_port}\n"
        f"Recommendation API:              http://127.0.0.1:{args.api_port}/recommend  "
        f"(try: curl -X POST -H 'content-type: application/json' -d '{{\"user_id\": 1, \"k\": 5}}' "
        f"http://127.0.0.1:{args.api_port}/recommend)\nPress Ctrl-C to stop."
    )
    try:
        while api.poll() is None and ui.poll() is None:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        for process in (api, ui):
            process.terminate()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="recs-platform",
        description="recs-platform: raw logs → dbt features → validated datasets → models → gated BentoML deployment.",
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    importer = commands.add_parser("import", help="import a public dataset into the landing zone")
    dataset = importer.add_subparsers(dest="dataset", required=True, metavar="DATASET")
    ml = dataset.add_parser("movielens", help="MovieLens-100K → daily event files and catalogs")
    ml.add_argument("--source", help="folder with u.data, u.item, u.user (default: $RECS_MOVIELENS_DIR)")
    ml.add_argument("--no-download", action="store_true", help="fail instead of downloading when absent")
    ml.set_defaults(handler=cmd_import)

    replay = commands.add_parser("replay", help="drop a dataset into the landing zone a step at a time, as if live")
    replayed = replay.add_subparsers(dest="dataset", required=True, metavar="DATASET")
    ml_replay = replayed.add_parser("movielens", help="MovieLens-100K, one day or week of daily files at a time")
    ml_replay.add_argument("--source", help="folder with u.data, u.item, u.user (default: $RECS_MOVIELENS_DIR)")
    ml_replay.add_argument(
        "--step", choices=sorted(movielens.REPLAY_STEPS), default="week", help="how much lands at once"
    )
    ml_replay.add_argument("--interval-s", type=float, default=60.0, help="seconds between steps")
    ml_replay.add_argument("--no-download", action="store_true", help="fail instead of downloading when absent")
    ml_replay.set_defaults(handler=cmd_replay)

    synth = commands.add_parser("synth", help="generate synthetic interaction logs into the landing zone")
    synth.add_argument("--users", type=int, default=1000, help="number of users")
    synth.add_argument("--items", type=int, default=1700, help="number of items")
    synth.add_argument("--events", type=int, default=100_000, help="number of events")
    synth.add_argument("--days", type=int, default=210, help="days the events span")
    synth.add_argument("--seed", type=int, default=7, help="random seed")
    synth.set_defaults(handler=cmd_synth)

    boot = commands.add_parser("bootstrap", help="land MovieLens-100K, or synthetic data when it is unavailable")
    boot.add_argument("--source", help="MovieLens folder (default: $RECS_MOVIELENS_DIR)")
    boot.set_defaults(handler=cmd_bootstrap)

    commands.add_parser("run", help="materialize the whole asset graph once").set_defaults(handler=cmd_run)

    serve = commands.add_parser("serve", help="serve the production model over HTTP (BentoML)")
    serve.add_argument("--host", default="127.0.0.1", help="interface to bind")
    serve.add_argument("--port", type=int, default=3000, help="port to bind")
    serve.set_defaults(handler=cmd_serve)

    commands.add_parser("status", help="show the production pointer and registered bundles").set_defaults(
        handler=cmd_status
    )
    commands.add_parser("rollback", help="point production back at the previous bundle").set_defaults(
        handler=cmd_rollback
    )

    demo = commands.add_parser("demo", help="bootstrap, run the graph, then start the Dagster UI, daemon and API")
    demo.add_argument("--source", help="MovieLens folder (default: $RECS_MOVIELENS_DIR)")
    demo.add_argument("--ui-port", type=int, default=3001, help="Dagster UI port")
    demo.add_argument("--api-port", type=int, default=3000, help="API port")
    demo.set_defaults(handler=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
