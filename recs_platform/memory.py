"""Large arrays without the kernel's huge-page stalls.

NumPy advises the kernel to back every array of 4 MB or more with transparent huge pages
(``madvise(MADV_HUGEPAGE)``). Where the kernel's THP ``defrag`` setting is ``madvise`` or
``defer+madvise``, a fault in such a region compacts memory synchronously whenever no huge page is
free, instead of falling back to small pages (numpy/numpy#31590). On this project's 2-core
machine that made an 800 MB array take 7-8 s to allocate instead of 0.6 s, and the closed-form
fits, which allocate several item x item arrays each, spent most of their time there
(docs/benchmarks.md, "Huge-page stalls").
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

THP_DEFRAG = Path("/sys/kernel/mm/transparent_hugepage/defrag")
# The settings under which a MADV_HUGEPAGE fault may stall on direct compaction.
STALLING_DEFRAG = frozenset({"madvise", "defer+madvise"})


def selected_setting(sysfs_text: str) -> str | None:
    """The bracketed choice of a sysfs setting line (``always [madvise] never`` → ``madvise``)."""
    chosen = re.search(r"\[([^\]]+)\]", sysfs_text)
    return chosen.group(1) if chosen else None


def avoid_hugepage_stalls(defrag_file: Path = THP_DEFRAG) -> bool:
    """Turn NumPy's huge-page advice off where the kernel would stall on it; returns whether it did.

    An explicit ``NUMPY_MADVISE_HUGEPAGE`` is the user's choice and is left alone, as is any kernel
    whose setting cannot be read (other systems, containers without ``/sys``).
    """
    if "NUMPY_MADVISE_HUGEPAGE" in os.environ:
        return False
    try:
        setting = selected_setting(defrag_file.read_text())
    except OSError:
        return False
    if setting not in STALLING_DEFRAG:
        return False
    np._core.multiarray._set_madvise_hugepage(False)
    return True
