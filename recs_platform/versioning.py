"""Code and data versions recorded in every artifact."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd

PACKAGE_ROOT = Path(__file__).resolve().parent


def code_version() -> str:
    """Hash of the library's source, plus the git commit when one is available."""
    digest = hashlib.sha256()
    for path in sorted(PACKAGE_ROOT.rglob("*.py")):
        digest.update(path.relative_to(PACKAGE_ROOT).as_posix().encode())
        digest.update(path.read_bytes())
    version = f"src-{digest.hexdigest()[:12]}"
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=PACKAGE_ROOT,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return version
    return f"{version}+git-{commit}" if commit else version


def frame_fingerprint(frames: dict[str, pd.DataFrame]) -> str:
    """Content hash of named frames, independent of row order within each frame."""
    digest = hashlib.sha256()
    for name in sorted(frames):
        frame = frames[name]
        digest.update(name.encode())
        digest.update(",".join(map(str, frame.columns)).encode())
        rows = pd.util.hash_pandas_object(_hashable(frame), index=False).to_numpy()
        rows.sort()
        digest.update(rows.tobytes())
    return digest.hexdigest()[:16]


def _hashable(frame: pd.DataFrame) -> pd.DataFrame:
    """List-valued columns (multi-valued attributes) as their JSON text, which pandas can hash."""
    lists = [c for c in frame.columns if frame[c].dtype == object and frame[c].dropna().head(1).map(_is_list).any()]
    if not lists:
        return frame
    return frame.assign(
        **{c: frame[c].map(lambda v: json.dumps(list(v), default=str) if _is_list(v) else v) for c in lists}
    )


def _is_list(value: object) -> bool:
    return isinstance(value, list | tuple | np.ndarray)
