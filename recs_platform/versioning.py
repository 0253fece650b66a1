"""Code and data versions recorded in every artifact."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

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
        rows = pd.util.hash_pandas_object(frame, index=False).to_numpy()
        rows.sort()
        digest.update(rows.tobytes())
    return digest.hexdigest()[:16]
