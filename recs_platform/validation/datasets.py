"""Frozen, content-versioned datasets: the only thing training and evaluation read."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from recs_platform.artifacts import MANIFEST, TABLES, DatasetVersion, no_impressions
from recs_platform.versioning import frame_fingerprint


def freeze(tables: dict[str, pd.DataFrame], root: Path, info: dict[str, Any]) -> DatasetVersion:
    """Write validated tables to ``root/<content hash>/``; an identical dataset is not rewritten.

    A dataset without served impressions gets an empty impressions table."""
    tables = {"impressions": no_impressions(), **tables}
    version = frame_fingerprint({name: tables[name] for name in TABLES})
    target = root / version
    if (target / MANIFEST).exists():
        return DatasetVersion(version, str(target))
    staging = root / f".{version}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for name in TABLES:
        tables[name].to_parquet(staging / f"{name}.parquet", index=False)
    manifest = {
        "version": version,
        "created_at": datetime.now(UTC).isoformat(),
        "rows": {name: len(tables[name]) for name in TABLES},
        **info,
    }
    (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str))
    staging.replace(target)
    return DatasetVersion(version, str(target))
