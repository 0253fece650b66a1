"""Health of the raw layer: quarantine rates per landed file and freshness of arriving events."""

from dataclasses import dataclass
from datetime import datetime, timedelta

import duckdb
import pandas as pd

from recs_platform.data.warehouse import has_raw_schema


def quarantine_rates(connection: duckdb.DuckDBPyConnection, kind: str = "events") -> pd.DataFrame:
    """Per landed file: rows in, loaded, quarantined and the quarantine rate, worst first."""
    if not has_raw_schema(connection):
        columns = ["source_file", "rows_in", "rows_loaded", "rows_quarantined", "quarantine_rate", "ingested_at"]
        return pd.DataFrame(columns=columns)
    return connection.execute(
        """
        select source_file, rows_in, rows_loaded, rows_quarantined,
               case when rows_in = 0 then 0.0 else rows_quarantined / rows_in end as quarantine_rate,
               ingested_at
        from raw.ingested_files
        where kind = ?
        order by quarantine_rate desc, source_file
        """,
        [kind],
    ).df()


@dataclass(frozen=True)
class Freshness:
    """When events last arrived, against the allowed window."""

    last_landed_at: datetime | None
    newest_event_at: datetime | None
    window: timedelta
    now: datetime

    @property
    def age(self) -> timedelta | None:
        return None if self.last_landed_at is None else self.now - self.last_landed_at

    @property
    def fresh(self) -> bool:
        return self.age is not None and self.age <= self.window

    def describe(self) -> str:
        if self.last_landed_at is None:
            return "no events have ever landed"
        hours = self.age.total_seconds() / 3600
        verdict = "within" if self.fresh else "OUTSIDE"
        return (
            f"last events landed {hours:.1f} h ago ({self.last_landed_at:%Y-%m-%d %H:%M} UTC), "
            f"{verdict} the {self.window.total_seconds() / 3600:.1f} h window"
        )


def events_freshness(connection: duckdb.DuckDBPyConnection, now: datetime, window: timedelta) -> Freshness:
    """Freshness of the event stream: the last time a file with loaded events was ingested.

    Landing time, not event time, is what says "logs stopped arriving": a replay of old data
    is fresh, and a producer stuck re-sending old files is not hidden by their timestamps.
    """
    if not has_raw_schema(connection):
        return Freshness(None, None, window, now)
    last_landed, newest_event = connection.execute(
        """
        select (select max(ingested_at) from raw.ingested_files where kind = 'events' and rows_loaded > 0),
               (select max("timestamp") from raw.events)
        """
    ).fetchone()
    return Freshness(last_landed, newest_event, window, now)
