"""Traffic simulation: replay an interaction log day by day against the running API.

For each simulated day the users active that day ask the API for recommendations, in the order
of their first event, at that event's time (the request's ``now``); then the day's events land in
the landing zone as the feedback: what those users actually consumed. A ``settle`` callback runs
between days (waiting for the daemon's ingestion, or driving the graph in-process), so fresh
history reaches serving and models retrain as they would in production.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

from recs_platform.data.events import write_landing_file
from recs_platform.models.base import plain_id

WEEK = pd.Timedelta(days=7)


@dataclass(frozen=True)
class ServedRequest:
    """One simulated request and what the API answered."""

    day: str
    week: int
    user_id: int | str
    requested_at: str
    request_id: str
    model_version: str
    source: str
    item_ids: list[int | str]


@dataclass(frozen=True)
class Day:
    """One simulated day: its number of week, date and events."""

    week: int
    date: str
    events: pd.DataFrame


def simulation_days(events: pd.DataFrame, start: pd.Timestamp, weeks: int) -> Iterator[Day]:
    """The days of ``weeks`` weeks from ``start`` that have events, in order."""
    end = start + weeks * WEEK
    window = events[(events.timestamp >= start) & (events.timestamp < end)]
    days = window.timestamp.dt.normalize()
    for day, frame in window.groupby(days, sort=True):
        yield Day(int((day - start) // WEEK) + 1, day.strftime("%Y-%m-%d"), frame)


def day_requests(day: Day, max_users: int | None) -> pd.DataFrame:
    """``user_id, requested_at`` of the day's active users, one request each, a second before their
    first event, in that order; at most ``max_users`` (the most active) when given."""
    first = day.events.groupby("user_id").timestamp.agg(first="min", events="size").reset_index()
    if max_users is not None and len(first) > max_users:
        first = first.sort_values(["events", "user_id"], ascending=[False, True]).head(max_users)
    first = first.sort_values(["first", "user_id"])
    return pd.DataFrame({"user_id": first.user_id, "requested_at": first["first"] - pd.Timedelta(seconds=1)})


class Simulator:
    """Sends each day's requests to ``api_url``, lands the day's events, then calls ``settle``."""

    def __init__(
        self,
        api_url: str,
        landing: Path,
        settle: Callable[[Day], None],
        k: int = 10,
        max_users_per_day: int | None = None,
        log: Callable[[str], None] = print,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.landing = landing
        self.settle = settle
        self.k = k
        self.max_users_per_day = max_users_per_day
        self.log = log

    def run(self, days: list[Day], name_prefix: str) -> list[ServedRequest]:
        served: list[ServedRequest] = []
        with httpx.Client(timeout=30) as client:
            for day in days:
                answers = [
                    self._ask(client, day, row) for row in day_requests(day, self.max_users_per_day).itertuples()
                ]
                served += answers
                write_landing_file(day.events, self.landing, "events", f"{name_prefix}-{day.date}")
                versions = ", ".join(sorted({a.model_version for a in answers}))
                self.log(f"week {day.week} {day.date}: {len(answers)} requests ({versions}), {len(day.events)} events")
                self.settle(day)
        return served

    def _ask(self, client: httpx.Client, day: Day, row: tuple) -> ServedRequest:
        user_id = plain_id(row.user_id)
        body = {"user_id": user_id, "k": self.k, "now": row.requested_at.isoformat()}
        response = client.post(f"{self.api_url}/recommend", json=body)
        response.raise_for_status()
        answer = response.json()
        return ServedRequest(
            day.date,
            day.week,
            user_id,
            row.requested_at.isoformat(),
            answer["request_id"],
            answer["model_version"],
            answer["source"],
            [item["item_id"] for item in answer["items"]],
        )


def weekly_table(
    served: list[ServedRequest], events: pd.DataFrame, k: int, window: pd.Timedelta = WEEK
) -> pd.DataFrame:
    """Per week and model version: requests, the share answered from fresh history, the consumption
    and hit rate of the served lists within ``window`` (from the replayed events), and how often a
    user's list changed between two requests answered by the same model version."""
    frame = pd.DataFrame([asdict(s) for s in served])
    if frame.empty:
        return pd.DataFrame()
    frame["consumed"] = [_consumed(events, r, window) for r in frame.itertuples()]
    frame["hits"] = frame.consumed.map(len)
    frame = frame.sort_values("requested_at")
    frame["changed"] = frame.groupby(["user_id", "model_version"]).item_ids.transform(
        lambda lists: [np.nan, *(float(a != b) for a, b in zip(lists.iloc[:-1], lists.iloc[1:], strict=True))]
    )
    grouped = frame.groupby(["week", "model_version"], sort=True)
    return grouped.agg(
        requests=("request_id", "size"),
        fresh_history_share=("source", lambda s: float((s == "model+fresh_history").mean())),
        **{f"consumption_rate@{k}": ("hits", lambda h: float(h.sum() / (len(h) * k)))},
        **{f"hit_rate@{k}": ("hits", lambda h: float((h > 0).mean()))},
        repeat_requests=("changed", "count"),
        changed_without_retrain=("changed", "sum"),
    ).reset_index()


def _consumed(events: pd.DataFrame, request: tuple, window: pd.Timedelta) -> list[int]:
    at = pd.Timestamp(request.requested_at)
    later = events[(events.user_id == request.user_id) & (events.timestamp > at) & (events.timestamp <= at + window)]
    return sorted(set(later.item_id) & set(request.item_ids))
