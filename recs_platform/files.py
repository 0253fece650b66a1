"""Small files that other processes poll (pointers), replaced atomically."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd


def write_json_atomically(path: Path, content: Any) -> None:
    """Replace ``path`` with ``content`` as JSON; a reader sees the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as handle:
        json.dump(content, handle, indent=2, default=str)
    os.replace(handle.name, path)


def write_parquet_atomically(frame: pd.DataFrame, path: Path) -> Path:
    """Write ``frame`` to ``path`` under a hidden name first, then rename: readers (and the landing
    zone's sensor, which ignores names without a landed suffix) never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    frame.to_parquet(partial, index=False)
    partial.replace(path)
    return path
