"""The online store's snapshot version: a content hash that any change to a user's state moves."""

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from recs_platform.online.store import export_snapshot, read_pointer, state_version


def state(histories: list[list[int]]) -> pd.DataFrame:
    seconds = [np.arange(len(items)).astype("datetime64[s]") for items in histories]
    return pd.DataFrame(
        {
            "user_id": np.arange(len(histories)),
            "item_sequence": [np.array(items, dtype=np.int64) for items in histories],
            "timestamp_sequence": [times.astype("datetime64[us]") for times in seconds],
            "activity_level": ["high"] * len(histories),
        }
    )


def test_a_change_in_the_middle_of_a_long_history_moves_the_version(tmp_path) -> None:
    """NumPy prints a 2,000-item array with its middle left out; the version must still see it."""
    long = list(range(2_000))
    before = export_snapshot(state([long, [5]]), tmp_path)["version"]
    long[1_000] = 7
    after = export_snapshot(state([long, [5]]), tmp_path)["version"]
    assert after != before and read_pointer(tmp_path)["version"] == after


@settings(max_examples=50, deadline=None)
@given(
    histories=st.lists(st.lists(st.integers(0, 50), max_size=8), min_size=1, max_size=6),
    data=st.data(),
)
def test_the_version_ignores_row_order_and_sees_any_item(histories: list[list[int]], data: st.DataObject) -> None:
    frame = state(histories)
    order = data.draw(st.permutations(range(len(frame))))
    assert state_version(frame.iloc[list(order)].reset_index(drop=True)) == state_version(frame)
    user = data.draw(st.integers(0, len(histories) - 1))
    changed = [list(items) for items in histories]
    changed[user] = [*changed[user], 99]  # one more item (and time) for one user
    assert state_version(state(changed)) != state_version(frame)
    if histories[user]:
        changed[user] = [*histories[user][:-1], 99]  # or one item replaced
        assert state_version(state(changed)) != state_version(frame)
