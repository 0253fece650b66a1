"""NumPy's huge-page advice is turned off exactly where the kernel would stall on it."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from recs_platform.memory import STALLING_DEFRAG, THP_DEFRAG, avoid_hugepage_stalls, selected_setting

DEFRAG_CHOICES = ["always", "defer", "defer+madvise", "madvise", "never"]


@pytest.fixture
def advice():
    """NumPy's advice flag, switched on for the test and restored after it."""
    before = np._core.multiarray._set_madvise_hugepage(True)
    yield np._core.multiarray._get_madvise_hugepage
    np._core.multiarray._set_madvise_hugepage(before)


def defrag_file(tmp_path: Path, chosen: str) -> Path:
    path = tmp_path / "defrag"
    path.write_text(" ".join(f"[{c}]" if c == chosen else c for c in DEFRAG_CHOICES) + "\n")
    return path


@given(st.sampled_from(DEFRAG_CHOICES), st.permutations(DEFRAG_CHOICES))
def test_selected_setting_is_the_bracketed_choice(chosen, order):
    line = " ".join(f"[{c}]" if c == chosen else c for c in order)
    assert selected_setting(line + "\n") == chosen


def test_selected_setting_without_a_choice_is_none():
    assert selected_setting("always madvise never") is None


@pytest.mark.parametrize(
    ("chosen", "turned_off"),
    [("madvise", True), ("defer+madvise", True), ("always", False), ("defer", False), ("never", False)],
)
def test_advice_is_off_only_where_faults_compact_synchronously(tmp_path, monkeypatch, advice, chosen, turned_off):
    monkeypatch.delenv("NUMPY_MADVISE_HUGEPAGE", raising=False)
    assert avoid_hugepage_stalls(defrag_file(tmp_path, chosen)) is turned_off
    assert advice() is not turned_off


def test_an_explicit_numpy_setting_is_left_alone(tmp_path, monkeypatch, advice):
    monkeypatch.setenv("NUMPY_MADVISE_HUGEPAGE", "1")
    assert avoid_hugepage_stalls(defrag_file(tmp_path, "madvise")) is False
    assert advice()


def test_an_unreadable_setting_is_left_alone(tmp_path, monkeypatch, advice):
    monkeypatch.delenv("NUMPY_MADVISE_HUGEPAGE", raising=False)
    assert avoid_hugepage_stalls(tmp_path / "missing") is False
    assert advice()


def advice_after(imports: str) -> bool:
    """NumPy's huge-page advice in a fresh interpreter after ``imports``."""
    probe = f"import {imports}; print(numpy._core.multiarray._get_madvise_hugepage())"
    return (
        subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip()
        == "True"
    )


def test_importing_the_package_applies_the_kernels_rule(monkeypatch):
    monkeypatch.delenv("NUMPY_MADVISE_HUGEPAGE", raising=False)
    try:
        stalls = selected_setting(THP_DEFRAG.read_text()) in STALLING_DEFRAG
    except OSError:
        stalls = False
    assert advice_after("recs_platform, numpy") == (advice_after("numpy") and not stalls)
