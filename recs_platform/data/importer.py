"""The generic import: your own event, item and user files, described by a dataset contract.

``recs-platform import events --events FILE --items FILE [--users FILE] --contract FILE`` checks
the contract and that each file has the columns the contract requires, keeps the contract in the
home (so every later run reads the same one), and copies the files unchanged into the landing
zone. Events land as one file: ingestion types and checks rows as they are, so nothing is
re-encoded on the way in; a later file with the same name replaces the earlier one's rows.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import pyarrow.parquet as pq

from recs_platform.data.contract import DatasetContract, load_contract, save_to_home
from recs_platform.data.events import SUPPORTED_SUFFIXES, landing_dir
from recs_platform.data.ingestion import REQUIRED, IngestionError
from recs_platform.settings import PlatformPaths

_SNIFFED_JSON_LINES = 1000  # a JSON-lines file's columns are the keys of its first lines


def file_columns(path: Path) -> list[str]:
    """The column names of a CSV, JSON-lines or Parquet file, read without loading its rows."""
    try:
        if path.suffix == ".parquet":
            return list(pq.read_schema(path).names)
        with path.open(encoding="utf-8", errors="replace", newline="") as handle:
            if path.suffix == ".csv":
                return next(csv.reader(line for line in handle if line.strip()), [])
            keys: dict[str, None] = {}
            for number, line in enumerate(handle):
                if number >= _SNIFFED_JSON_LINES:
                    break
                try:
                    document = json.loads(line) if line.strip() else None
                except ValueError:
                    continue  # a bad line is quarantined at ingestion; it names no columns
                keys.update(dict.fromkeys(document) if isinstance(document, dict) else {})
            return list(keys)
    except (OSError, csv.Error, ValueError) as error:
        raise IngestionError(f"cannot read {path} as {path.suffix.lstrip('.')}: {error}") from error


def _check_file(path: Path, kind: str, contract: DatasetContract) -> None:
    if not path.is_file():
        raise IngestionError(f"the {kind} file {path} does not exist")
    if path.suffix not in SUPPORTED_SUFFIXES:
        raise IngestionError(f"the {kind} file {path} is not {', '.join(SUPPORTED_SUFFIXES)}")
    columns = file_columns(path)
    missing = [column for column in REQUIRED[kind] if column not in columns]
    if missing:
        raise IngestionError(
            f"the {kind} file {path} lacks the column {', '.join(missing)} that contract {contract.name!r} "
            f"requires (it has {', '.join(columns) or 'no columns'})"
        )


def import_files(
    contract_path: Path, paths: PlatformPaths, events: Path, items: Path | None = None, users: Path | None = None
) -> list[Path]:
    """Check everything first, then save the contract into the home and land the files; returns them.

    Raises ``ContractError`` or ``IngestionError`` (one sentence naming the file, column or setting)
    before anything is written.
    """
    contract = load_contract(contract_path)
    files = {"events": events, "items": items, "users": users}
    for kind, article, noun in (("items", "an", "item"), ("users", "a", "user")):
        declared = contract.has_catalog(kind)
        if declared and files[kind] is None:
            raise IngestionError(
                f"contract {contract.name!r} declares {article} {noun} catalogue, so pass --{kind} FILE "
                f"(or set '{kind}: null' in {contract_path} when there is none)"
            )
        if not declared and files[kind] is not None:
            raise IngestionError(
                f"contract {contract.name!r} declares no {noun} catalogue ('{kind}: null' in "
                f"{contract_path}), "
                f"so --{kind} {files[kind]} would never be read"
            )
    chosen = {kind: path for kind, path in files.items() if path is not None}
    for kind, path in chosen.items():
        _check_file(path, kind, contract)
    save_to_home(contract_path, paths.home)
    return [_copy_atomically(path, landing_dir(paths.landing, kind) / path.name) for kind, path in chosen.items()]


def _copy_atomically(source: Path, target: Path) -> Path:
    """Copy under a name the sensor ignores, then rename: a half-copied file is never ingested."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    shutil.copyfile(source, partial)
    os.replace(partial, target)
    return target
