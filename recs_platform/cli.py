"""The library's commands of ``recs-platform``: data in, serving and the registry.

The commands that run the asset graph (``run``, ``demo``) sit above both layers, in
``assets/cli.py``, which adds them to this parser; the library never imports Dagster.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict
from functools import partial
from pathlib import Path

from recs_platform.console import track
from recs_platform.data import movielens
from recs_platform.data.events import landed_files
from recs_platform.settings import PlatformPaths

DEFAULT_MOVIELENS_DIR = "data/ml-100k"
SERVICE = "recs_platform.serving.service:RecommenderService"
MOVIELENS_FILES = partial(track, description="MovieLens-100K", unit="files")


def movielens_dir(value: str | None) -> Path:
    return Path(value or os.environ.get("RECS_MOVIELENS_DIR", DEFAULT_MOVIELENS_DIR))


def cmd_import(args: argparse.Namespace) -> int:
    source = movielens.ensure(movielens_dir(args.source), allow_download=not args.no_download)
    landing = PlatformPaths.from_env().landing
    written = movielens.import_to_landing(source, landing, MOVIELENS_FILES)
    print(f"imported MovieLens-100K from {source}: {len(written)} files in {landing}")
    return 0


def cmd_import_events(args: argparse.Namespace) -> int:
    """Your own files under a dataset contract; a mistake is one sentence on stderr, exit status 2."""
    from recs_platform.data.contract import ContractError
    from recs_platform.data.importer import import_files
    from recs_platform.data.ingestion import IngestionError

    paths = PlatformPaths.from_env()
    try:
        written = import_files(args.contract, paths, args.events, items=args.items, users=args.users)
    except (ContractError, IngestionError) as error:
        print(f"recs-platform import events: {error}", file=sys.stderr)
        return 2
    print(f"imported {len(written)} files into {paths.landing} under contract {args.contract} (kept in {paths.home})")
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    source = movielens.ensure(movielens_dir(args.source), allow_download=not args.no_download)
    landing = PlatformPaths.from_env().landing
    steps = partial(track, description=f"replaying MovieLens-100K every {args.interval_s:g}s", unit=f"{args.step}s")
    landed = movielens.replay_to_landing(source, landing, args.step, args.interval_s, track=steps)
    total = sum(len(written) for written in landed)
    print(f"replay done: {total} files landed in {landing}")
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    from recs_platform.data import synthetic

    config = synthetic.SyntheticConfig(
        n_users=args.users, n_items=args.items, n_events=args.events, seed=args.seed, days=args.days
    )
    landing = PlatformPaths.from_env().landing
    print(f"generating {args.events:,} events for {args.users:,} users and {args.items:,} items", flush=True)
    files = partial(track, description="synthetic events", unit="files")
    written = synthetic.write_to_landing(synthetic.generate(config), landing, track=files)
    print(f"generated {args.events} synthetic events: {len(written)} files in {landing}")
    return 0


def cmd_bootstrap(args: argparse.Namespace) -> int:
    """Land MovieLens-100K unless events have landed already; offline and without a local copy,
    land synthetic data instead."""
    landing = PlatformPaths.from_env().landing
    already = landed_files(landing, "events")
    if already:
        print(f"the landing zone already holds {len(already)} event files; nothing to bootstrap")
        return 0
    try:
        source = movielens.ensure(movielens_dir(args.source), allow_download=True)
    except movielens.MovieLensUnavailable as reason:
        banner = "=" * 78
        print(
            f"{banner}\nMovieLens-100K is unavailable ({reason}).\n"
            f"FALLING BACK TO THE BUILT-IN SYNTHETIC GENERATOR: the demo runs on synthetic data.\n{banner}"
        )
        return cmd_synth(argparse.Namespace(users=943, items=1682, events=100_000, seed=7, days=210))
    written = movielens.import_to_landing(source, landing, MOVIELENS_FILES)
    print(f"landed MovieLens-100K from {source}: {len(written)} files")
    return 0


def serve_command(host: str, port: int) -> list[str]:
    """The ``bentoml serve`` command line of the prediction API."""
    return [sys.executable, "-m", "bentoml", "serve", SERVICE, "--host", host, "--port", str(port)]


def serving_env() -> dict[str, str]:
    paths = PlatformPaths.from_env()
    return {
        **os.environ,
        "RECS_HOME": str(paths.home),
        "BENTOML_HOME": str(paths.bentoml_home),
        "BENTOML_DO_NOT_TRACK": "True",
    }


def cmd_serve(args: argparse.Namespace) -> int:
    return subprocess.call(serve_command(args.host, args.port), env=serving_env())


def _registry():
    from recs_platform.serving.model import production_registry

    return production_registry(PlatformPaths.from_env())


def cmd_status(args: argparse.Namespace) -> int:
    """Aliases (champion, challengers), the history of their moves, refused moves, the registered
    bundles, and what each running server reports (``warnings`` names any that does not serve
    what the champion alias names)."""
    from recs_platform.serving.health import divergence, read_statuses

    registry = _registry()
    servers = read_statuses(PlatformPaths.from_env().serving_status)
    report = {
        "aliases": {name: asdict(record) for name, record in registry.aliases().items()},
        "history": [asdict(entry) for entry in registry.history()[-args.history :]],
        "refusals": [asdict(refusal) for refusal in registry.refusals()[-args.history :]],
        "bundles": registry.tags(),
        "servers": servers,
        "warnings": [warning for warning in map(divergence, servers) if warning is not None],
    }
    print(json.dumps(report, indent=2))
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    record = _registry().rollback(to=args.to, by=f"cli ({os.environ.get('USER', 'unknown')})")
    print(f"champion rolled back → {record.tag}")
    return 0


Commands = argparse._SubParsersAction  # what add_parser is called on


def add_library_commands(commands: Commands) -> None:
    """import, replay, synth, bootstrap, serve, status, rollback."""
    importer = commands.add_parser("import", help="import a public dataset into the landing zone")
    dataset = importer.add_subparsers(dest="dataset", required=True, metavar="DATASET")
    ml = dataset.add_parser("movielens", help="MovieLens-100K → daily event files and catalogs")
    ml.add_argument("--source", help="folder with u.data, u.item, u.user (default: $RECS_MOVIELENS_DIR)")
    ml.add_argument("--no-download", action="store_true", help="fail instead of downloading when absent")
    ml.set_defaults(handler=cmd_import)
    own = dataset.add_parser(
        "events", help="your own event, item and user files (CSV, Parquet or JSON lines) under a dataset contract"
    )
    own.add_argument("--events", type=Path, required=True, help="the interaction events file")
    own.add_argument("--items", type=Path, help="the item catalogue (required unless the contract says items: null)")
    own.add_argument("--users", type=Path, help="the user catalogue (required unless the contract says users: null)")
    own.add_argument("--contract", type=Path, required=True, help="the dataset contract YAML (see config/contracts)")
    own.set_defaults(handler=cmd_import_events)

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

    boot = commands.add_parser(
        "bootstrap", help="land MovieLens-100K (synthetic data when unavailable) unless events have landed"
    )
    boot.add_argument("--source", help="MovieLens folder (default: $RECS_MOVIELENS_DIR)")
    boot.set_defaults(handler=cmd_bootstrap)

    serve = commands.add_parser("serve", help="serve the production model over HTTP (BentoML)")
    serve.add_argument("--host", default="127.0.0.1", help="interface to bind")
    serve.add_argument("--port", type=int, default=3000, help="port to bind")
    serve.set_defaults(handler=cmd_serve)

    status = commands.add_parser(
        "status", help="show the aliases, their history, refused moves, the bundles and what each server serves"
    )
    status.add_argument("--history", type=int, default=20, help="how many of the latest alias moves and refusals")
    status.set_defaults(handler=cmd_status)
    rollback = commands.add_parser("rollback", help="point the champion back at an earlier champion")
    rollback.add_argument("--to", help="a tag that was champion before (default: the previous champion)")
    rollback.set_defaults(handler=cmd_rollback)


def build_parser(*extensions: Callable[[Commands], None], epilog: str = "") -> argparse.ArgumentParser:
    """The ``recs-platform`` parser: the library's commands plus those each extension adds."""
    parser = argparse.ArgumentParser(
        prog="recs-platform",
        description="recs-platform: raw logs → dbt features → validated datasets → models → gated BentoML deployment.",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_library_commands(commands)
    for extend in extensions:
        extend(commands)
    return parser
