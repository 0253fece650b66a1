"""The declared dataset contract: what one dataset's files hold, read from one YAML file.

A contract names the id type of users and items, the event types (which are positive, with
what weight), and each catalogue's columns with their kinds. Ingestion, the dbt project, the
pandera schemas, the features, the two-tower's towers, the slices and the diversity metric all
read it instead of assuming MovieLens' columns. ``config/contracts/movielens.yaml`` is one
contract among others.

Example::

    name: shop
    ids: {users: string, items: string}
    events:
      click: {positive: true, weight: 1.0}
      purchase: {positive: true, weight: 3.0}
      impression: {positive: false}
    users: null                      # no user catalogue: user features come from events alone
    items:
      category: {kind: categorical}
      price: {kind: numeric}
      tags: {kind: multi, separator: "|"}
      launched: {kind: date}
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

IdType = Literal["integer", "string"]
ColumnKind = Literal["categorical", "numeric", "multi", "date", "timestamp"]
ID_TYPES: tuple[str, ...] = ("integer", "string")
COLUMN_KINDS: tuple[str, ...] = ("categorical", "numeric", "multi", "date", "timestamp")
# The DuckDB type a column of each kind is stored as in the raw tables.
SQL_TYPES = {
    "categorical": "varchar", "numeric": "double", "multi": "varchar", "date": "date", "timestamp": "timestamp",
}  # fmt: skip
ID_SQL_TYPES = {"integer": "bigint", "string": "varchar"}
MAX_STRING_ID = 256  # longer "ids" are data errors (a pasted document), not identifiers
RESERVED_COLUMNS = frozenset({"user_id", "item_id", "source_file", "ingested_at", "line_number", "raw_text", "reason"})
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
CONTRACTS_DIR = Path(__file__).resolve().parents[2] / "config" / "contracts"
DEFAULT_CONTRACT = "movielens"


class ContractError(ValueError):
    """A contract file that cannot be used; the message names the file and the setting."""


@dataclass(frozen=True)
class CatalogColumn:
    """One catalogue attribute and how it is typed, featurized and sliced."""

    name: str
    kind: ColumnKind
    separator: str = "|"
    # Numeric columns only: band edges, e.g. [18, 25] gives '<18', '18-24', '25+' in ``<name>_bucket``.
    buckets: tuple[float, ...] = ()
    # Whether a categorical (or bucketed) user column splits users into segments for slices,
    # segment popularity, drift and the user tower; off for near-unique values such as postcodes.
    segment: bool = True

    @property
    def segment_column(self) -> str | None:
        """The user-feature column this attribute contributes to segments, if any."""
        if not self.segment:
            return None
        if self.kind == "numeric":
            return f"{self.name}_bucket" if self.buckets else None
        return self.name if self.kind == "categorical" else None

    @property
    def sql_type(self) -> str:
        return SQL_TYPES[self.kind]


@dataclass(frozen=True)
class EventType:
    name: str
    positive: bool = True
    weight: float = 1.0


@dataclass(frozen=True)
class DatasetContract:
    """One dataset's declared shape; ``users``/``items`` are None when that catalogue is absent."""

    name: str
    user_id_type: IdType
    item_id_type: IdType
    event_types: tuple[EventType, ...]
    users: tuple[CatalogColumn, ...] | None
    items: tuple[CatalogColumn, ...] | None
    title_column: str | None = None
    source: str = field(default="", compare=False)

    @property
    def event_type_names(self) -> frozenset[str]:
        return frozenset(event.name for event in self.event_types)

    @property
    def positive_weights(self) -> dict[str, float]:
        """Event type → weight for the types that count as a positive interaction."""
        return {event.name: event.weight for event in self.event_types if event.positive}

    def id_type(self, column: str) -> IdType:
        return self.user_id_type if column == "user_id" else self.item_id_type

    def catalog(self, kind: str) -> tuple[CatalogColumn, ...]:
        """The declared columns of the ``users`` or ``items`` catalogue; empty when it is absent."""
        columns = self.users if kind == "users" else self.items
        return columns or ()

    def has_catalog(self, kind: str) -> bool:
        return (self.users if kind == "users" else self.items) is not None

    @property
    def user_segment_columns(self) -> list[str]:
        """User-feature columns that segment users (``age_bucket``, ``gender``, ...), from the contract."""
        return [name for column in self.catalog("users") if (name := column.segment_column)]

    def model_defaults(self) -> dict[str, list[str]]:
        """Feature-column parameters of the recommenders that use side information, from this
        contract: a sweep that sets none trains on the dataset's own columns."""
        segments = self.user_segment_columns
        items = [
            f"{column.name}_list" if column.kind == "multi" else column.name
            for column in self.catalog("items")
            if column.kind in ("multi", "categorical") and column.name != self.title_column
        ]
        defaults = {"user_features": segments, "item_features": items}
        return defaults | ({"segment_columns": segments[:2]} if segments else {})

    def columns_of_kind(self, kind: str, *column_kinds: str) -> list[str]:
        return [column.name for column in self.catalog(kind) if column.kind in column_kinds]

    @property
    def item_date_column(self) -> str | None:
        """The first date/timestamp item column: item age comes from it, and is left out without it."""
        dates = self.columns_of_kind("items", "date", "timestamp")
        return dates[0] if dates else None

    @property
    def diversity_column(self) -> CatalogColumn | None:
        """The item attribute diversity is measured over: the first multi-valued or categorical column."""
        for kinds in (("multi",), ("categorical",)):
            for column in self.catalog("items"):
                if column.kind in kinds and column.name != self.title_column:
                    return column
        return None

    def dbt_vars(self) -> dict[str, Any]:
        """What the dbt project needs to know, passed as ``--vars {"contract": ...}``."""

        def columns(kind: str) -> list[dict[str, str]]:
            return [
                {"name": c.name, "kind": c.kind, "separator": c.separator, "buckets": list(c.buckets)}
                for c in self.catalog(kind)
            ]

        return {
            "name": self.name,
            "has_users": self.has_catalog("users"),
            "has_items": self.has_catalog("items"),
            "user_id_type": ID_SQL_TYPES[self.user_id_type],
            "item_id_type": ID_SQL_TYPES[self.item_id_type],
            "positive_event_types": sorted(self.positive_weights),
            "positive_weights": self.positive_weights,
            "user_columns": columns("users"),
            "item_columns": columns("items"),
            "item_date_column": self.item_date_column,
            "title_column": self.title_column,
        }


def _error(source: str, message: str) -> ContractError:
    return ContractError(f"contract {source}: {message}")


def _columns(raw: Any, source: str, catalog: str) -> tuple[CatalogColumn, ...] | None:
    if raw is None or raw is False:
        return None
    if not isinstance(raw, dict):
        raise _error(source, f"'{catalog}' must map column names to {{kind: ...}}, or be null when absent")
    columns = []
    for name, spec in raw.items():
        spec = spec or {}
        if not isinstance(name, str) or not _NAME.match(name) or name in RESERVED_COLUMNS:
            raise _error(source, f"'{catalog}.{name}' is not a usable column name (lower_snake_case, not reserved)")
        kind = spec.get("kind") if isinstance(spec, dict) else spec
        if kind not in COLUMN_KINDS:
            raise _error(source, f"'{catalog}.{name}.kind' is {kind!r}; expected one of {', '.join(COLUMN_KINDS)}")
        spec = spec if isinstance(spec, dict) else {}
        separator = spec.get("separator", "|")
        if not isinstance(separator, str) or not separator or "'" in separator:
            raise _error(source, f"'{catalog}.{name}.separator' must be a non-empty string without quotes")
        buckets = spec.get("buckets", [])
        numbers = isinstance(buckets, list) and all(
            isinstance(b, int | float) and not isinstance(b, bool) for b in buckets
        )
        if not numbers or buckets != sorted(set(buckets)) or (buckets and kind != "numeric"):
            raise _error(source, f"'{catalog}.{name}.buckets' must be increasing numbers, on a numeric column")
        columns.append(CatalogColumn(name, kind, separator, tuple(buckets), bool(spec.get("segment", True))))
    return tuple(columns)


def _event_types(raw: Any, source: str) -> tuple[EventType, ...]:
    if not isinstance(raw, dict) or not raw:
        raise _error(source, "'events' must map each event type to {positive: true|false, weight: number}")
    types = []
    for name, spec in raw.items():
        spec = spec or {}
        if not isinstance(name, str) or not name or name != name.strip().lower():
            raise _error(source, f"event type {name!r} must be a lower-case name")
        weight = spec.get("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not weight > 0:
            raise _error(source, f"'events.{name}.weight' must be a positive number, got {weight!r}")
        types.append(EventType(name, bool(spec.get("positive", True)), float(weight)))
    if not any(event.positive for event in types):
        raise _error(source, "no event type is positive, so there is nothing to learn from")
    return tuple(types)


def parse_contract(document: dict, source: str = "<contract>") -> DatasetContract:
    """Build and check a contract from its parsed YAML; every error names the setting."""
    if not isinstance(document, dict):
        raise _error(source, "the file must hold a mapping")
    ids = document.get("ids", {})
    id_types = {}
    for role in ("users", "items"):
        id_types[role] = ids.get(role, "integer") if isinstance(ids, dict) else None
        if id_types[role] not in ID_TYPES:
            raise _error(source, f"'ids.{role}' is {id_types[role]!r}; expected 'integer' or 'string'")
    items = _columns(document.get("items"), source, "items")
    title = document.get("title_column")
    if title is not None and title not in {c.name for c in items or ()}:
        raise _error(source, f"'title_column' names {title!r}, which is not an item column")
    return DatasetContract(
        name=str(document.get("name") or Path(source).stem),
        user_id_type=id_types["users"],
        item_id_type=id_types["items"],
        event_types=_event_types(document.get("events"), source),
        users=_columns(document.get("users"), source, "users"),
        items=items,
        title_column=title,
        source=source,
    )


@functools.cache
def default_contract() -> DatasetContract:
    """MovieLens' contract: what library calls that are given none assume."""
    return load_contract(DEFAULT_CONTRACT)


def load_contract(path: Path | str) -> DatasetContract:
    """Read a contract file, or a named one from ``config/contracts`` ("movielens")."""
    path = Path(path)
    if not path.suffix and not path.exists():
        path = CONTRACTS_DIR / f"{path}.yaml"
    if not path.exists():
        raise ContractError(f"contract file {path} does not exist")
    try:
        document = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ContractError(f"contract {path} is not valid YAML: {error}") from error
    return parse_contract(document, str(path))


HOME_CONTRACT = "contract.yaml"  # the contract a home was imported with, beside its warehouse


def contract_for_home(home: Path) -> DatasetContract:
    """The contract of the data under ``home``.

    ``RECS_CONTRACT`` (a path or a name) wins; otherwise the copy ``recs-platform import`` left in
    the home; otherwise MovieLens. Every process (runs, sensors, the API) resolves it the same way.
    """
    named = os.environ.get("RECS_CONTRACT")
    if named:
        return load_contract(named)
    copy = home / HOME_CONTRACT
    return load_contract(copy if copy.exists() else DEFAULT_CONTRACT)


def save_to_home(contract_path: Path, home: Path) -> DatasetContract:
    """Check a contract file and keep a copy in ``home``, so later runs read the same contract."""
    contract = load_contract(contract_path)
    home.mkdir(parents=True, exist_ok=True)
    (home / HOME_CONTRACT).write_text(Path(contract.source).read_text())
    return contract
