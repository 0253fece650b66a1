"""``recs-platform import events``: your own files under a contract land unchanged, the contract is
kept in the home, and mistakes are one sentence before anything is written."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd
import pytest

from recs_platform.cli import build_parser
from recs_platform.data.contract import CONTRACTS_DIR, contract_for_home
from recs_platform.data.ingestion import ingest_landing
from recs_platform.settings import PlatformPaths

EVENTS_CSV = (
    b"user_id,item_id,event_type,timestamp\nu-1,sku:9,click,2024-01-01T10:00:00\nu-2,sku:9,purchase,1704103200\n"
)
ITEMS = pd.DataFrame({"item_id": ["sku:9"], "name": ["Mug"], "category": ["kitchen"], "price": [4.5]})


def run(*argv: str) -> int:
    args = build_parser().parse_args(["import", "events", *argv])
    return args.handler(args)


@pytest.fixture
def home(tmp_path: Path, monkeypatch) -> PlatformPaths:
    monkeypatch.setenv("RECS_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("RECS_CONTRACT", raising=False)
    return PlatformPaths.from_env()


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "clicks.csv").write_bytes(EVENTS_CSV)
    ITEMS.to_parquet(tmp_path / "catalogue.parquet", index=False)
    (tmp_path / "users.jsonl").write_text('{"user_id": "u-1"}\n')
    return {
        "events": tmp_path / "clicks.csv",
        "items": tmp_path / "catalogue.parquet",
        "users": tmp_path / "users.jsonl",
    }


def test_import_lands_the_files_unchanged_and_keeps_the_contract(home, files, capsys):
    shop = str(CONTRACTS_DIR / "shop.yaml")
    assert run("--events", str(files["events"]), "--items", str(files["items"]), "--contract", shop) == 0
    assert (home.landing / "events" / "clicks.csv").read_bytes() == EVENTS_CSV
    assert (home.landing / "items" / "catalogue.parquet").read_bytes() == files["items"].read_bytes()
    assert contract_for_home(home.home).name == "shop"
    assert "imported 2 files" in capsys.readouterr().out

    connection = duckdb.connect()
    reports = ingest_landing(connection, home.landing, contract=contract_for_home(home.home))
    assert [(r.kind, r.rows_loaded, r.rows_quarantined) for r in reports] == [("items", 1, 0), ("events", 2, 0)]
    assert connection.execute("select user_id, item_id from raw.events order by 1").fetchall() == [
        ("u-1", "sku:9"),
        ("u-2", "sku:9"),
    ]


@pytest.mark.parametrize(
    ("change", "sentence"),
    [
        (
            {"--users": "users"},
            "contract 'shop' declares no user catalogue ('users: null' in {shop}), so --users {users} would never "
            "be read",
        ),
        ({"--items": None}, "contract 'shop' declares an item catalogue, so pass --items FILE"),
        ({"--events": "users"}, "the events file {users} lacks the column item_id, event_type, timestamp"),
        ({"--contract": "users"}, "contract {users}: 'events' must map each event type"),
    ],
    ids=["catalogue-not-declared", "catalogue-missing", "missing-columns", "not-a-contract"],
)
def test_import_mistakes_are_one_sentence_and_write_nothing(home, files, capsys, change, sentence):
    shop = str(CONTRACTS_DIR / "shop.yaml")
    options = {"--events": str(files["events"]), "--items": str(files["items"]), "--contract": shop}
    for option, value in change.items():
        options[option] = None if value is None else str(files[value])
    argv = [part for option, value in options.items() if value is not None for part in (option, value)]
    assert run(*argv) == 2
    error = capsys.readouterr().err.strip()
    assert sentence.format(shop=shop, users=files["users"]) in error and "\n" not in error
    assert not home.landing.exists() and not (home.home / "contract.yaml").exists()
