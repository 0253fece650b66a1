"""MovieLens-100K: reading, landing, checksum-verified download, and the offline fallback."""

import functools
import http.server
import os
import threading
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from assets import cli
from recs_platform.data import movielens
from recs_platform.data.events import landed_files

REPO = Path(__file__).resolve().parent.parent
MOVIELENS = Path(os.environ.get("RECS_MOVIELENS_DIR", REPO.parent / "shared" / "data" / "ml-100k"))


def test_read_decodes_latin1_titles_and_counts():
    data = movielens.read(MOVIELENS)
    assert (len(data.events), len(data.users), len(data.items)) == (100_000, 943, 1_682)
    titles = data.items.set_index("item_id").title
    assert titles[543] == "Misérables, Les (1995)"
    assert titles[1104] == "C'est arrivé près de chez vous (1992)"
    assert data.items.set_index("item_id").genres[1] == "Animation|Children|Comedy"


def test_import_writes_one_event_file_per_day_and_both_catalogs(tmp_path):
    movielens.import_to_landing(MOVIELENS, tmp_path)
    events = landed_files(tmp_path, "events")
    assert len(events) == 213  # distinct days between 1997-09-20 and 1998-04-22 with ratings
    assert sum(len(pd.read_parquet(path)) for path in events) == 100_000
    assert [p.name for p in landed_files(tmp_path, "items")] == ["ml100k-items.parquet"]
    assert [p.name for p in landed_files(tmp_path, "users")] == ["ml100k-users.parquet"]


@pytest.fixture
def http_root(tmp_path):
    """A loopback HTTP server over a folder, standing in for GroupLens."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _zip(root: Path, corrupt: bool = False) -> None:
    with zipfile.ZipFile(root / "ml-100k.zip", "w") as archive:
        for name in movielens.CHECKSUMS:
            payload = (MOVIELENS / name).read_bytes()
            archive.writestr(f"ml-100k/{name}", payload[:-1] if corrupt else payload)


def test_download_verifies_checksums(http_root, tmp_path):
    root, url = http_root
    _zip(root)
    target = movielens.download(tmp_path / "ml", url=f"{url}/ml-100k.zip")
    movielens.verify(target)


def test_download_rejects_a_corrupted_archive(http_root, tmp_path):
    root, url = http_root
    _zip(root, corrupt=True)
    with pytest.raises(movielens.MovieLensUnavailable, match="sha256"):
        movielens.download(tmp_path / "ml", url=f"{url}/ml-100k.zip")


def test_bootstrap_falls_back_to_synthetic_data_and_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RECS_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(movielens, "DOWNLOAD_URL", "http://127.0.0.1:9/unreachable.zip")
    assert cli.main(["bootstrap", "--source", str(tmp_path / "absent")]) == 0
    assert "FALLING BACK TO THE BUILT-IN SYNTHETIC GENERATOR" in capsys.readouterr().out
    events = landed_files(tmp_path / "home" / "landing", "events")
    assert events and pd.read_parquet(events[0]).event_id.str.startswith("syn-").all()


def test_bootstrap_leaves_an_already_filled_landing_zone_alone(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RECS_HOME", str(tmp_path / "home"))
    movielens.import_to_landing(MOVIELENS, tmp_path / "home" / "landing")
    before = {p: p.stat().st_mtime_ns for p in landed_files(tmp_path / "home" / "landing", "events")}
    assert cli.main(["bootstrap"]) == 0
    assert "already holds 213 event files" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in landed_files(tmp_path / "home" / "landing", "events")} == before


def test_replay_drops_one_week_at_a_time(tmp_path):
    pauses = []
    batches = list(movielens.replay_to_landing(MOVIELENS, tmp_path, step="week", interval_s=5, sleep=pauses.append))
    assert [p.parent.name for p in batches[0]] == ["users", "items"]
    weeks = batches[1:]
    assert len(weeks) == 31 and pauses == [5] * 31
    assert sum(len(files) for files in weeks) == 213
    first_week = pd.concat(pd.read_parquet(path) for path in weeks[0])
    assert first_week.timestamp.max() - first_week.timestamp.min() < pd.Timedelta(days=7)
    assert len(landed_files(tmp_path, "events")) == 213
