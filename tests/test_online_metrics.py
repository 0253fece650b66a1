"""Online metrics, the engagement verdict and the simulator's bookkeeping, on hand-built frames
with known answers."""

import numpy as np
import pandas as pd
import pytest

from recs_platform.monitoring.online import engagement_drop, online_metrics
from recs_platform.online.simulator import ServedRequest, day_requests, simulation_days, weekly_table


def feedback_rows(request_id: str, day: str, version: str, consumed: list[bool], closed: bool = True) -> list[dict]:
    return [
        {"request_id": request_id, "served_at": pd.Timestamp(f"{day} 10:00"), "model_version": version,
         "position": position, "item_id": 100 + position, "consumed": flag, "window_closed": closed}
        for position, flag in enumerate(consumed, start=1)
    ]  # fmt: skip


def test_online_metrics_per_version_and_day_known_answer():
    feedback = pd.DataFrame(
        feedback_rows("a", "2024-01-01", "v1", [True, False, False])
        + feedback_rows("b", "2024-01-01", "v1", [False, False, False])
        + feedback_rows("c", "2024-01-02", "v2", [False, True, True], closed=False)
    )
    requests = pd.DataFrame(
        {
            "request_id": ["a", "b", "c"],
            "served_at": pd.to_datetime(["2024-01-01 10:00", "2024-01-01 11:00", "2024-01-02 10:00"]),
            "model_version": ["v1", "v1", "v2"],
            "answer_source": ["model", "popularity", "model+fresh_history"],
            "latency_ms": [2.0, 4.0, 10.0],
        }
    )
    table = online_metrics(feedback, requests, k=2, catalog_size=10).set_index("model_version")
    v1, v2 = table.loc["v1"], table.loc["v2"]
    assert v1.day == "2024-01-01" and v1.requests == 2 and v2.requests == 1
    assert v1["share_model"] == 0.5 and v1["share_popularity"] == 0.5 and v2["share_model+fresh_history"] == 1.0
    assert v1["consumption_rate@2"] == pytest.approx(1 / 4)  # top 2 of two lists, one consumed
    assert v1["hit_rate@2"] == 0.5 and v2["hit_rate@2"] == 1.0
    assert v2["consumption_rate@2"] == 0.5  # position 3 is beyond k
    assert v1.coverage == pytest.approx(2 / 10)
    assert v1.latency_p50_ms == 3.0 and v1.mature and not v2.mature


def daily_feedback(rates: list[float], requests_per_day: int = 10) -> pd.DataFrame:
    rows = []
    for day, rate in enumerate(rates):
        for request in range(requests_per_day):
            consumed = [request < rate * requests_per_day, False]
            rows += feedback_rows(f"{day}-{request}", f"2024-01-{day + 1:02d}", "v", consumed)
    return pd.DataFrame(rows)


@pytest.mark.parametrize(
    ("rates", "dropped"),
    [([0.6, 0.6, 0.6, 0.2], True), ([0.6, 0.6, 0.6, 0.5], False), ([0.6], False)],
)
def test_engagement_drop_compares_the_newest_mature_day_with_its_trailing_baseline(rates, dropped):
    verdict = engagement_drop(daily_feedback(rates), k=2, margin=0.2, min_requests=5, baseline_days=7)
    assert verdict.dropped is dropped
    if len(rates) > 1:
        assert verdict.rate == pytest.approx(rates[-1] / 2) and verdict.baseline == pytest.approx(0.3)


def test_engagement_ignores_days_with_too_few_requests_or_open_windows():
    feedback = daily_feedback([0.6, 0.6, 0.0], requests_per_day=10)
    feedback.loc[feedback.served_at.dt.day == 3, "window_closed"] = False
    assert not engagement_drop(feedback, k=2, margin=0.2, min_requests=5, baseline_days=7).dropped
    assert "not enough" in engagement_drop(daily_feedback([0.6, 0.0], 3), 2, 0.2, 5, 7).description


def test_simulated_days_and_requests_follow_the_log():
    events = pd.DataFrame(
        {
            "user_id": [1, 2, 1, 3, 2],
            "item_id": [10, 11, 12, 13, 14],
            "timestamp": pd.to_datetime(
                ["2024-01-01 09:00", "2024-01-01 08:00", "2024-01-01 12:00", "2024-01-09 10:00", "2024-01-20 10:00"]
            ),
        }
    )
    days = list(simulation_days(events, pd.Timestamp("2024-01-01"), weeks=2))
    assert [(d.week, d.date, len(d.events)) for d in days] == [(1, "2024-01-01", 3), (2, "2024-01-09", 1)]
    requests = day_requests(days[0], max_users=None)
    assert requests.user_id.tolist() == [2, 1]  # in the order of their first event
    assert requests.requested_at.tolist() == [pd.Timestamp("2024-01-01 07:59:59"), pd.Timestamp("2024-01-01 08:59:59")]
    assert day_requests(days[0], max_users=1).user_id.tolist() == [1]  # the most active user


def test_weekly_table_known_answer():
    events = pd.DataFrame(
        {"user_id": [1, 1], "item_id": [5, 9], "timestamp": pd.to_datetime(["2024-01-02", "2024-01-20"])}
    )
    served = [
        ServedRequest("2024-01-01", 1, 1, "2024-01-01T00:00:00", "r1", "v1", "model", [5, 6]),
        ServedRequest("2024-01-03", 1, 1, "2024-01-03T00:00:00", "r2", "v1", "model+fresh_history", [7, 6]),
        ServedRequest("2024-01-08", 2, 1, "2024-01-08T00:00:00", "r3", "v2", "model", [9, 8]),
    ]
    table = weekly_table(served, events, k=2).set_index(["week", "model_version"])
    first = table.loc[(1, "v1")]
    assert first.requests == 2 and first.fresh_history_share == 0.5
    assert first["consumption_rate@2"] == pytest.approx(1 / 4)  # item 5 within a week of r1
    assert first.repeat_requests == 1 and first.changed_without_retrain == 1
    assert table.loc[(2, "v2")]["hit_rate@2"] == 0.0  # item 9 came 12 days later, outside the window
    assert np.isclose(table["requests"].sum(), 3)
