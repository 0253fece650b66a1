"""MovieLens-100K: locate or download, verify, and convert into landing-zone files."""

from __future__ import annotations

import hashlib
import io
import logging
import time
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from recs_platform.data.events import Track, write_landing_file

log = logging.getLogger(__name__)

DOWNLOAD_URL = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
# sha256 of the original GroupLens files; a download is accepted only if these match.
CHECKSUMS = {
    "u.data": "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490",
    "u.item": "553841ebc7de3a0fd0d6b62a204ea30c1e651aacfb2814c7a6584ac52f2c5701",
    "u.user": "f120e114da2e8cf314fd28f99417c94ae9ddf1cb6db8ce0e4b5995d40e90e62c",
}
GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi",
    "Thriller", "War", "Western",
)  # fmt: skip


REPLAY_STEPS = {"day": 1, "week": 7}


class MovieLensUnavailable(RuntimeError):
    """MovieLens-100K is neither on disk nor downloadable (e.g. offline)."""


@dataclass(frozen=True)
class MovieLens:
    """The three MovieLens tables in landing-zone shape."""

    events: pd.DataFrame
    users: pd.DataFrame
    items: pd.DataFrame


def verify(directory: Path) -> None:
    """Raise ``MovieLensUnavailable`` unless ``directory`` holds the original files."""
    for name, expected in CHECKSUMS.items():
        path = directory / name
        if not path.exists():
            raise MovieLensUnavailable(f"{path} is missing")
        actual = hashlib.sha256(path.read_bytes()).hexdigest()
        if actual != expected:
            raise MovieLensUnavailable(f"{path} has sha256 {actual}, expected {expected}")


def download(directory: Path, url: str | None = None, timeout: float = 30.0) -> Path:
    """Download and unpack MovieLens-100K into ``directory``, then verify its checksums."""
    url = url or DOWNLOAD_URL
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            payload = response.read()
    except OSError as error:
        raise MovieLensUnavailable(f"cannot download {url}: {error}") from error
    directory.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(io.BytesIO(payload)) as archive:
        for member in archive.namelist():
            name = Path(member).name
            if member.startswith("ml-100k/") and name:
                (directory / name).write_bytes(archive.read(member))
    verify(directory)
    return directory


def ensure(directory: Path, allow_download: bool = True) -> Path:
    """Return a verified MovieLens-100K directory, downloading it if allowed and absent."""
    try:
        verify(directory)
        return directory
    except MovieLensUnavailable:
        if not allow_download or (directory / "u.data").exists():
            raise
    log.info("MovieLens-100K not found in %s; downloading from GroupLens", directory)
    return download(directory)


def read(directory: Path) -> MovieLens:
    """Read MovieLens-100K into landing-shaped frames (``u.item`` is latin-1)."""
    ratings = pd.read_csv(directory / "u.data", sep="\t", names=["user_id", "item_id", "value", "unix_ts"])
    events = pd.DataFrame(
        {
            "event_id": "ml100k-" + ratings.user_id.astype(str) + "-" + ratings.item_id.astype(str),
            "user_id": ratings.user_id.astype("int64"),
            "item_id": ratings.item_id.astype("int64"),
            "event_type": "rating",
            "value": ratings.value.astype("float64"),
            "timestamp": pd.to_datetime(ratings.unix_ts, unit="s"),
        }
    )
    users = pd.read_csv(
        directory / "u.user",
        sep="|",
        names=["user_id", "age", "gender", "occupation", "zip_code"],
        dtype={"zip_code": str},
    )
    raw_items = pd.read_csv(
        directory / "u.item",
        sep="|",
        encoding="latin-1",
        header=None,
        names=["item_id", "title", "release_date", "video_release_date", "url", *GENRES],
    )
    flags = raw_items[list(GENRES)].to_numpy(dtype=bool)
    items = pd.DataFrame(
        {
            "item_id": raw_items.item_id.astype("int64"),
            "title": raw_items.title.fillna(""),
            "release_date": pd.to_datetime(raw_items.release_date, format="%d-%b-%Y").dt.date,
            "genres": ["|".join(g for g, on in zip(GENRES, row, strict=True) if on) for row in flags],
        }
    )
    return MovieLens(events=events, users=users, items=items)


def write_catalogs(movielens: MovieLens, landing: Path) -> list[Path]:
    return [
        write_landing_file(movielens.users, landing, "users", "ml100k-users"),
        write_landing_file(movielens.items, landing, "items", "ml100k-items"),
    ]


def daily_event_files(events: pd.DataFrame) -> Iterator[tuple[str, pd.DataFrame]]:
    """(file name, events) per calendar day, in time order."""
    days = events.timestamp.dt.strftime("%Y-%m-%d")
    for day, frame in events.groupby(days, sort=True):
        yield f"ml100k-{day}", frame


def import_to_landing(source: Path, landing: Path, track: Track = iter) -> list[Path]:
    """Convert MovieLens-100K into one event file per day plus user and item catalogs; ``track``
    walks the daily files (e.g. behind a progress bar)."""
    movielens = read(source)
    written = write_catalogs(movielens, landing)
    for name, frame in track(list(daily_event_files(movielens.events))):
        written.append(write_landing_file(frame, landing, "events", name))
    return written


def replay_to_landing(
    source: Path,
    landing: Path,
    step: str = "week",
    interval_s: float = 0.0,
    sleep: Callable[[float], None] = time.sleep,
    track: Track = iter,
) -> Iterator[list[Path]]:
    """Drop MovieLens into the landing zone one ``step`` (day or week) at a time, as if it were live.

    Catalogs land first; then each step's daily files land together, ``interval_s`` apart
    (``track`` walks the steps). File names match ``import_to_landing``, so a replay over an
    imported landing zone changes nothing.
    """
    if step not in REPLAY_STEPS:
        raise ValueError(f"step must be one of {sorted(REPLAY_STEPS)}, got {step!r}")
    movielens = read(source)
    yield write_catalogs(movielens, landing)
    start = movielens.events.timestamp.min().normalize()
    period = (movielens.events.timestamp - start) // pd.Timedelta(days=REPLAY_STEPS[step])
    for chunk in track([chunk for _, chunk in movielens.events.groupby(period, sort=True)]):
        sleep(interval_s)
        yield [write_landing_file(frame, landing, "events", name) for name, frame in daily_event_files(chunk)]
