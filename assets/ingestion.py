"""Landing zone → raw schema."""

import hashlib
from collections.abc import Iterator

import dagster as dg
import pandas as pd

from assets.resources import StorageResource, WarehouseResource
from recs_platform.data.events import LANDING_KINDS, landed_files
from recs_platform.data.ingestion import ingest_landing

RAW_KEYS = {kind: dg.AssetKey(["raw", kind]) for kind in LANDING_KINDS}


@dg.observable_source_asset(group_name="landing", description="Files dropped into the landing zone.")
def landing_zone(storage: StorageResource) -> dg.ObserveResult:
    """Observes the landing zone; its data version changes whenever a file lands or changes."""
    listing = [
        f"{path.name}:{path.stat().st_size}:{path.stat().st_mtime_ns}"
        for kind in LANDING_KINDS
        for path in landed_files(storage.paths.landing, kind)
    ]
    counts = {kind: len(landed_files(storage.paths.landing, kind)) for kind in LANDING_KINDS}
    version = hashlib.sha256("\n".join(listing).encode()).hexdigest()[:16]
    return dg.ObserveResult(
        data_version=dg.DataVersion(version),
        metadata={f"{kind}_files": count for kind, count in counts.items()},
    )


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            key, deps=[landing_zone.key], group_name="raw", description=f"Raw {kind} loaded from landed files."
        )
        for kind, key in RAW_KEYS.items()
    ],
    pool="warehouse",
)
def raw_tables(storage: StorageResource, warehouse: WarehouseResource) -> Iterator[dg.MaterializeResult]:
    """Loads new or changed landed files into raw.*, each file once, bad rows to raw.quarantine."""
    with warehouse.connect() as connection:
        reports = ingest_landing(connection, storage.paths.landing)
        totals = connection.execute(
            "select 'events', count(*) from raw.events union all select 'users', count(*) from raw.users"
            " union all select 'items', count(*) from raw.items"
        ).fetchall()
    frame = pd.DataFrame([report.as_dict() for report in reports])
    for kind, rows in totals:
        files = frame[frame.kind == kind] if not frame.empty else frame
        new = files[~files.skipped] if not files.empty else files
        yield dg.MaterializeResult(
            asset_key=RAW_KEYS[kind],
            metadata={
                "dagster/row_count": int(rows),
                "files_seen": len(files),
                "files_ingested": len(new),
                "rows_in": int(new.rows_in.sum()) if len(new) else 0,
                "rows_loaded": int(new.rows_loaded.sum()) if len(new) else 0,
                "rows_quarantined": int(new.rows_quarantined.sum()) if len(new) else 0,
                "ingested_files": dg.MetadataValue.md(_file_table(new)),
            },
        )


def _file_table(files: pd.DataFrame) -> str:
    if files.empty:
        return "_no new or changed files_"
    columns = ["source_file", "rows_in", "rows_loaded", "rows_quarantined", "reasons"]
    return files[columns].tail(50).to_markdown(index=False)
