"""Landing zone → raw schema: event files as partitions, catalogs, and raw-layer health checks."""

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import dagster as dg
import duckdb
import pandas as pd

from assets.resources import RawHealthSettings, StorageResource, WarehouseResource
from recs_platform.data.contract import ContractError, DatasetContract, contract_for_home
from recs_platform.data.events import LANDING_KINDS, RAW_TABLES, landed_files
from recs_platform.data.ingestion import FileReport, IngestionError, ingest_file, raise_for_problems
from recs_platform.data.warehouse import SchemaMismatch, ensure_raw_schema
from recs_platform.monitoring.raw_health import events_freshness, quarantine_rates


@dataclass(frozen=True)
class LandedFileKind:
    """A kind of landed file ingested one partition per file into its raw table."""

    kind: str  # the landing-zone folder
    key: dg.AssetKey
    partitions: dg.DynamicPartitionsDefinition
    description: str


EVENTS = LandedFileKind(
    "events",
    dg.AssetKey(["raw", "events"]),
    dg.DynamicPartitionsDefinition(name="landed_event_files"),
    "Landed event files (one partition each) loaded into raw.events; bad rows go to raw.quarantine.",
)
SERVING_LOGS = LandedFileKind(
    "serving_logs",
    dg.AssetKey(["raw", "served_impressions"]),
    dg.DynamicPartitionsDefinition(name="served_log_files"),
    "Serving-log files the API landed (one partition each) loaded into raw.served_impressions, one row per "
    "answered request with the exact inputs it used; bad rows go to raw.quarantine.",
)
PARTITIONED_KINDS = (EVENTS, SERVING_LOGS)
landed_event_files = EVENTS.partitions
RAW_EVENTS = EVENTS.key
RAW_CATALOGS = {kind: dg.AssetKey(["raw", kind]) for kind in ("users", "items")}


@dg.observable_source_asset(group_name="landing", description="Files dropped into the landing zone.")
def landing_zone(storage: StorageResource) -> dg.ObserveResult:
    """Observes the landing zone; its data version changes whenever a file lands or changes."""
    files = {kind: landed_files(storage.paths.landing, kind) for kind in LANDING_KINDS}
    listing = [f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for paths in files.values() for p in paths]
    version = hashlib.sha256("\n".join(listing).encode()).hexdigest()[:16]
    return dg.ObserveResult(
        data_version=dg.DataVersion(version),
        metadata={f"{kind}_files": len(paths) for kind, paths in files.items()},
    )


def landed_file_asset(spec: LandedFileKind) -> dg.AssetsDefinition:
    """The raw asset of one kind: each file is loaded once per content hash in one transaction, so
    re-running a partition, a backfill, or a run that crashed half-way leaves exactly one copy."""

    @dg.asset(
        key=spec.key,
        deps=[landing_zone],
        partitions_def=spec.partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        group_name="raw",
        pool="warehouse",
        description=spec.description,
    )
    def raw_files(
        context: dg.AssetExecutionContext, storage: StorageResource, warehouse: WarehouseResource
    ) -> dg.MaterializeResult:
        landing = storage.paths.landing
        paths = [landing / spec.kind / key for key in context.partition_keys]
        missing = [path.name for path in paths if not path.exists()]
        if missing:
            context.log.warning(f"{len(missing)} partitions name files no longer landed: {missing[:10]}")
        with _clear_failures(), warehouse.connect() as connection:
            contract = _contract(connection, storage)
            now = datetime.now(UTC).replace(tzinfo=None)
            reports = [
                ingest_file(connection, landing, path, spec.kind, now, contract) for path in paths if path.exists()
            ]
            rows = connection.execute(f"select count(*) from raw.{RAW_TABLES[spec.kind]}").fetchone()[0]
            metadata = {"dagster/row_count": int(rows), **_ingestion_metadata(reports), "files_missing": len(missing)}
            _fail_on_problems(reports, int(rows), RAW_TABLES[spec.kind], metadata)
        return dg.MaterializeResult(metadata=metadata)

    return raw_files


raw_events = landed_file_asset(EVENTS)
raw_served_impressions = landed_file_asset(SERVING_LOGS)


@dg.multi_asset(
    specs=[
        dg.AssetSpec(key, deps=[landing_zone], group_name="raw", description=f"Raw {kind} catalog snapshots.")
        for kind, key in RAW_CATALOGS.items()
    ],
    pool="warehouse",
)
def raw_catalogs(storage: StorageResource, warehouse: WarehouseResource) -> Iterator[dg.MaterializeResult]:
    """Loads new or changed user and item catalog files into raw.users and raw.items; fails, naming the
    folder, while a catalogue the contract declares has never landed (nothing downstream can be built
    without one). A catalogue the contract declares absent stays an empty table (dbt sources exist)."""
    landing = storage.paths.landing
    with _clear_failures(), warehouse.connect() as connection:
        contract = _contract(connection, storage)
        now = datetime.now(UTC).replace(tzinfo=None)
        for kind, key in RAW_CATALOGS.items():
            if not contract.has_catalog(kind):
                yield dg.MaterializeResult(
                    asset_key=key, metadata={"dagster/row_count": 0, "absent": f"contract {contract.name!r}"}
                )
                continue
            files = landed_files(landing, kind)
            reports = [ingest_file(connection, landing, path, kind, now, contract) for path in files]
            rows = int(connection.execute(f"select count(*) from raw.{kind}").fetchone()[0])
            if not rows and not files:
                raise dg.Failure(
                    description=f"no {kind} catalog has landed in {landing / kind} (is the landing zone empty?); "
                    f"land one, e.g. with `recs-platform bootstrap`, or declare `{kind}: null` in contract "
                    f"{contract.source or contract.name}, and run again"
                )
            metadata = {"dagster/row_count": rows, **_ingestion_metadata(reports)}
            _fail_on_problems(reports, rows, kind, metadata)
            yield dg.MaterializeResult(asset_key=key, metadata=metadata)


def _contract(connection: duckdb.DuckDBPyConnection, storage: StorageResource) -> DatasetContract:
    """The home's contract, with the raw tables it describes (checked against what exists)."""
    contract = contract_for_home(storage.paths.home)
    ensure_raw_schema(connection, contract)
    return contract


@contextmanager
def _clear_failures() -> Iterator[None]:
    """A contract, warehouse or data mistake fails the run with its one sentence, not a traceback."""
    try:
        yield
    except (ContractError, SchemaMismatch, IngestionError) as error:
        raise dg.Failure(description=str(error)) from None


def _fail_on_problems(reports: list[FileReport], rows: int, table: str, metadata: dict[str, object]) -> None:
    """Fail, after the files were recorded, when a file was rejected whole or nothing could be loaded."""
    try:
        raise_for_problems(reports, rows, table)
    except IngestionError as error:
        raise dg.Failure(description=str(error), metadata=metadata) from None


def _ingestion_metadata(reports: list[FileReport]) -> dict[str, object]:
    """Counts in = counts out, per file and in total."""
    frame = pd.DataFrame([report.as_dict() for report in reports], columns=list(FileReport.__dataclass_fields__))
    new = frame[~frame.skipped.astype(bool)]
    columns = ["source_file", "rows_in", "rows_loaded", "rows_quarantined", "reasons", "problem"]
    return {
        "files": len(frame),
        "files_ingested": len(new),
        "files_already_ingested": int(frame.skipped.sum()),
        "files_rejected": int(new.problem.notna().sum()),
        "rows_in": int(new.rows_in.sum()),
        "rows_loaded": int(new.rows_loaded.sum()),
        "rows_quarantined": int(new.rows_quarantined.sum()),
        "per_file": dg.MetadataValue.md(new[columns].head(100).to_markdown(index=False) if len(new) else "_none_"),
    }


@dg.asset_check(asset=RAW_EVENTS, description="Share of quarantined rows per landed event file.")
def quarantine_rate(warehouse: WarehouseResource, raw_health: RawHealthSettings) -> dg.AssetCheckResult:
    """Fails when any landed event file quarantined more than the configured share of its rows."""
    with warehouse.connect(read_only=True) as connection:
        rates = quarantine_rates(connection)
    offenders = rates[rates.quarantine_rate > raw_health.max_quarantine_rate]
    overall = float(rates.rows_quarantined.sum() / max(rates.rows_in.sum(), 1))
    return dg.AssetCheckResult(
        passed=offenders.empty,
        description=f"{len(offenders)} of {len(rates)} files above {raw_health.max_quarantine_rate:.1%} quarantined",
        metadata={
            "overall_quarantine_rate": overall,
            "max_file_quarantine_rate": float(rates.quarantine_rate.max()) if len(rates) else 0.0,
            "worst_files": dg.MetadataValue.md(rates.head(20).to_markdown(index=False) if len(rates) else "_none_"),
        },
    )


@dg.asset_check(asset=RAW_EVENTS, description="Alarms when no new events have landed within the window.")
def events_are_fresh(warehouse: WarehouseResource, raw_health: RawHealthSettings) -> dg.AssetCheckResult:
    """The "weblogs stopped arriving" alarm, evaluated on every ingestion and on a schedule."""
    window = timedelta(hours=raw_health.freshness_window_hours)
    with warehouse.connect(read_only=True) as connection:
        freshness = events_freshness(connection, datetime.now(UTC).replace(tzinfo=None), window)
    return dg.AssetCheckResult(
        passed=freshness.fresh,
        description=freshness.describe(),
        metadata={
            "hours_since_last_landing": freshness.age.total_seconds() / 3600 if freshness.age else float("inf"),
            "last_landed_at": str(freshness.last_landed_at),
            "newest_event_at": str(freshness.newest_event_at),
            "window_hours": raw_health.freshness_window_hours,
        },
    )
