"""The online store: every user's current history and features, as a read-only snapshot.

After each ingestion the warehouse's ``user_histories`` and ``user_features`` marts (the dbt code
that also builds the training data) are exported to ``<home>/online/snapshots/<version>.parquet``
and ``<home>/online/current.json`` is replaced atomically to name it, as the production pointer
names a bundle. Serving loads the snapshot into memory and polls the pointer: it never opens the
warehouse, so it never contends for DuckDB's writer lock.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from recs_platform.data.contract import ID_SQL_TYPES, DatasetContract
from recs_platform.files import write_json_atomically, write_parquet_atomically
from recs_platform.models.base import as_ids, sorted_row
from recs_platform.versioning import frame_fingerprint

POINTER = "current.json"
SNAPSHOTS = "snapshots"
KEEP_SNAPSHOTS = 3  # the current one and two before it, for a server still loading an older one
SEQUENCES = ("item_sequence", "timestamp_sequence")

STATE_SQL = """
select
    coalesce(features.user_id, histories.user_id) as user_id,
    coalesce(histories.item_sequence, []::{item_id_type}[]) as item_sequence,
    coalesce(histories.timestamp_sequence, []::timestamp[]) as timestamp_sequence,
    {feature_columns}
from user_histories as histories
full outer join user_features as features on features.user_id = histories.user_id
order by user_id
"""


@dataclass(frozen=True)
class UserState:
    """What the online store knows about one user now."""

    user_id: int
    history: np.ndarray  # item ids, oldest first (first interaction time, as the training splits)
    history_times: np.ndarray  # datetime64[us], aligned with history
    features: dict[str, Any]  # feature_columns(contract) values; None where unknown


def feature_columns(contract: DatasetContract) -> list[str]:
    """The user_features columns that describe a user: the contract's segments and the activity level
    (the rest are activity counts and dates)."""
    return [*contract.user_segment_columns, "activity_level"]


def read_state(connection: duckdb.DuckDBPyConnection, contract: DatasetContract) -> pd.DataFrame:
    """One row per user from the warehouse's histories and features marts."""
    features = ", ".join(f"features.{column}" for column in feature_columns(contract))
    item_id_type = ID_SQL_TYPES[contract.item_id_type]
    return connection.execute(STATE_SQL.format(feature_columns=features, item_id_type=item_id_type)).df()


def export_snapshot(state: pd.DataFrame, root: Path) -> dict[str, Any]:
    """Write ``state`` as a snapshot under ``root`` and point ``root/current.json`` at it.

    The version is the content hash, so re-exporting unchanged data rewrites nothing but the
    pointer's time. Returns the pointer's content.
    """
    version = state_version(state)
    snapshots = root / SNAPSHOTS
    target = snapshots / f"{version}.parquet"
    if not target.exists():
        write_parquet_atomically(state, target)
    pointer = {
        "version": version,
        "path": str(target),
        "users": len(state),
        "interactions": int(state.item_sequence.map(len).sum()) if len(state) else 0,
        "exported_at": datetime.now(UTC).isoformat(),
    }
    write_json_atomically(root / POINTER, pointer)
    _prune(snapshots, keep=target)
    return pointer


def state_version(state: pd.DataFrame) -> str:
    """Content hash of a state, whatever its row order: the other columns by value, and every
    sequence whole. (Hashing a sequence's text missed changes: NumPy prints an array of over 1,000
    items with its middle left out.)"""
    digest = hashlib.sha256(frame_fingerprint({"state": state.drop(columns=list(SEQUENCES))}).encode())
    ordered = state.sort_values("user_id", kind="stable")
    for column in SEQUENCES:
        sequences = [np.asarray(value) for value in ordered[column]]
        digest.update(np.array([len(value) for value in sequences], dtype=np.int64).tobytes())
        if sequences:
            digest.update(pd.util.hash_array(np.concatenate(sequences)).tobytes())
    return digest.hexdigest()[:16]


def read_pointer(root: Path) -> dict[str, Any] | None:
    """The current pointer, or None before the first export."""
    path = root / POINTER
    return json.loads(path.read_text()) if path.exists() else None


class OnlineStore:
    """A loaded snapshot: ``get(user_id)`` in O(log users), histories as one flat array."""

    def __init__(self, state: pd.DataFrame, version: str) -> None:
        self.version = version
        state = state.sort_values("user_id")
        self.user_ids = as_ids(state.user_id.to_numpy())
        lengths = state.item_sequence.map(len).to_numpy()
        self.offsets = np.concatenate([[0], np.cumsum(lengths)])
        self.items = as_ids(np.concatenate([np.asarray(v) for v in state.item_sequence] or [np.zeros(0, np.int64)]))
        times = [np.asarray(v, dtype="datetime64[us]") for v in state.timestamp_sequence]
        self.times = np.concatenate(times or [np.zeros(0, dtype="datetime64[us]")]).astype("datetime64[us]")
        described = [column for column in state.columns if column not in ("user_id", *SEQUENCES)]
        self.features = state[described].astype(object).where(state[described].notna(), None)
        self._feature_rows = self.features.to_dict(orient="records")

    @classmethod
    def load(cls, root: Path) -> OnlineStore | None:
        """The snapshot the pointer names, or None before the first export."""
        pointer = read_pointer(root)
        if pointer is None:
            return None
        return cls(pd.read_parquet(pointer["path"]), pointer["version"])

    def __len__(self) -> int:
        return len(self.user_ids)

    def get(self, user_id: int | str) -> UserState | None:
        row = sorted_row(self.user_ids, user_id)
        if row is None:
            return None
        start, end = self.offsets[row], self.offsets[row + 1]
        return UserState(user_id, self.items[start:end], self.times[start:end], dict(self._feature_rows[row]))


def _prune(snapshots: Path, keep: Path) -> None:
    """Delete all but the newest ``KEEP_SNAPSHOTS`` snapshots (never ``keep``)."""
    files = sorted(snapshots.glob("*.parquet"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in files[KEEP_SNAPSHOTS:]:
        if old != keep:
            old.unlink(missing_ok=True)
