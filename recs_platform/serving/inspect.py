"""The inspection page, mounted on the Bento service at ``/inspect``: look before it serves.

* ``/inspect/``: the top-k of any set of bundles side by side (champion, challengers, any
  registered tag, the bundle's popularity and segment baselines) for a user id or a composed
  profile (demographics plus items found by title), with titles, attributes and popularity, and
  the items the lists share highlighted.
* ``/inspect/bundle/{tag}``: the most frequent first items and their share of users, overall and
  per segment: the "same album first for everyone" check.
* ``/inspect/experiments``: every sweep configuration of every run, filterable.
* ``/inspect/online``: online metrics, the shadow comparison and the alias history, with links
  to the Dagster asset pages.
* ``/inspect/api/admin/...``: promote, set an alias, roll back, set a shadow share; each needs
  ``Authorization: Bearer <RECS_ADMIN_TOKEN>`` and is recorded in the alias history. A move to a
  bundle that fails verification is refused with 409 and the reason.

Answers come from ``serving.answer`` with the same inputs as the API, so what the page shows is
what users would get.
"""

from __future__ import annotations

import hmac
import json
import os
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request as HttpRequest
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from recs_platform.deployment import SHADOW_MARGIN, SHADOW_MIN_REQUESTS, PromotionRefused, promote_challenger
from recs_platform.experiments import experiments_table
from recs_platform.models.base import as_ids, plain_id
from recs_platform.online.store import feature_columns
from recs_platform.registry import CHAMPION, BundleRefused, ModelRegistry, ServingBundle
from recs_platform.serving.answer import Answer, Request, answer
from recs_platform.serving.model import ProductionModel
from recs_platform.serving.schemas import SERVED_CONTRACT
from recs_platform.settings import PlatformPaths

# The user id of a composed profile: nobody the models know, in the contract's id type.
PROFILE_USER = "(composed profile)" if SERVED_CONTRACT.user_id_type == "string" else 2**62
MAX_LISTS = 6
SEGMENT_COLUMNS = tuple(feature_columns(SERVED_CONTRACT))  # the user features first items are split by
MAX_CHOICES = 30  # a profile field with at most this many known values is a drop-down, else free text
TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("recs_platform.serving", "templates"), autoescape=True, trim_blocks=True
)


@dataclass
class ListedItem:
    rank: int
    item_id: int | str
    score: float
    title: str
    attributes: dict[str, Any]
    why: str = ""  # for a two-stage list: retrieval sources and the largest feature contributions


@dataclass
class ShownList:
    key: str
    label: str
    version: str
    source: str
    items: list[ListedItem] = field(default_factory=list)


@dataclass
class AdminSettings:
    """Admin access and the shadow gate, from the serving process's environment."""

    token: str | None
    shadow_gate: tuple[float, int] | None  # (margin, minimum requests) when the gate is on
    dagster_url: str

    @classmethod
    def from_env(cls) -> AdminSettings:
        """``RECS_ADMIN_TOKEN``, ``RECS_SHADOW_GATE`` (with ``RECS_SHADOW_MARGIN`` and
        ``RECS_SHADOW_MIN_REQUESTS``, as the deployment settings read them) and ``RECS_DAGSTER_URL``."""
        gate = os.environ.get("RECS_SHADOW_GATE", "").lower() in ("1", "true", "yes")
        margin = float(os.environ.get("RECS_SHADOW_MARGIN", SHADOW_MARGIN))
        minimum = int(os.environ.get("RECS_SHADOW_MIN_REQUESTS", SHADOW_MIN_REQUESTS))
        return cls(
            token=os.environ.get("RECS_ADMIN_TOKEN") or None,
            shadow_gate=(margin, minimum) if gate else None,
            dagster_url=os.environ.get("RECS_DAGSTER_URL", "http://127.0.0.1:3001"),
        )


class Inspector:
    """What the page shows, computed from the serving process's own state."""

    def __init__(
        self, production: ProductionModel, paths: PlatformPaths, registry: ModelRegistry, admin: AdminSettings
    ):
        self.production = production
        self.paths = paths
        self.registry = registry
        self.admin = admin
        self._bundles: OrderedDict[str, ServingBundle] = OrderedDict()
        self._first_items: dict[str, dict[str, pd.DataFrame]] = {}

    # -- choosing lists -------------------------------------------------------------------------
    def choices(self) -> list[tuple[str, str]]:
        """(key, label) of every list the page can show."""
        aliases = self.registry.aliases()
        champion_first = sorted(aliases.items(), key=lambda pair: (pair[0] != CHAMPION, pair[0]))
        keys = [(f"alias:{name}", f"{name} ({record.tag})") for name, record in champion_first]
        keys += [
            ("baseline:popularity", "popularity (champion's fallback)"),
            ("baseline:segment", "segment popularity"),
        ]
        keys += [(f"tag:{tag}", tag) for tag in self.registry.tags()]
        return keys

    def bundle(self, tag: str) -> ServingBundle:
        """A bundle by tag: the ones being served, else loaded and kept in a small cache."""
        served = [self.production.bundle.value, *(c.bundle for c in self.production.challengers.value or [])]
        for bundle in served:
            if bundle is not None and bundle.version == tag:
                return bundle
        if tag not in self._bundles:
            self._bundles[tag] = self.registry.load(tag)
            while len(self._bundles) > MAX_LISTS:
                self._bundles.popitem(last=False)
        return self._bundles[tag]

    def champion(self) -> ServingBundle:
        bundle = self.production.bundle.value
        if bundle is None:
            raise LookupError("no champion is being served yet")
        return bundle

    # -- lists side by side ---------------------------------------------------------------------
    def compare(self, keys: list[str], request: Request, profile: bool) -> list[ShownList]:
        online = self.production.online.value
        state = None if profile or online is None else online.get(request.user_id)
        return [self._list(key, request, state) for key in keys[:MAX_LISTS]]

    def _list(self, key: str, request: Request, state: Any) -> ShownList:
        kind, _, name = key.partition(":")
        if kind == "baseline":
            return self._baseline(name, request, state)
        tag = self.registry.aliases()[name].tag if kind == "alias" else name
        bundle = self.bundle(tag)
        result = answer(bundle, request, state)
        shown = ShownList(key, name, tag, result.source)
        shown.items = self._items(bundle, result.item_ids, result.scores)
        for item, why in zip(shown.items, explanations(bundle, result), strict=False):
            item.why = why
        return shown

    def _baseline(self, name: str, request: Request, state: Any) -> ShownList:
        champion = self.champion()
        history = list(request.recent_items) + (state.history.tolist() if state is not None else [])
        if name == "segment" and champion.segment is not None:
            features = dict(request.features or (state.features if state is not None else {}))
            ranked = champion.segment.recommend_for_segment(features, k=request.k + len(history))
            ranked = ranked[~ranked.item_id.isin(history)].head(request.k)
            ids, scores = ranked.item_id.tolist(), ranked.score.tolist()
        else:
            ids, scores = champion.fallback.most_popular(request.k, exclude_items=as_ids(history))
        shown = ShownList(f"baseline:{name}", f"{name} baseline", champion.version, name)
        shown.items = self._items(champion, list(ids), list(scores))
        return shown

    @staticmethod
    def _items(bundle: ServingBundle, ids: list[int | str], scores: list[float]) -> list[ListedItem]:
        ids = as_ids(ids).tolist()
        rows = bundle.catalog.reindex(ids)
        return [
            ListedItem(
                rank,
                item,
                float(score),
                str(row.get("title", "")) if pd.notna(row.get("title")) else "",
                {name: value for name, value in row.items() if name != "title" and pd.notna(value)},
            )
            for rank, (item, score, (_, row)) in enumerate(zip(ids, scores, rows.iterrows(), strict=True), start=1)
        ]

    def search_items(self, query: str, limit: int = 20) -> list[dict[str, Any]]:
        catalog = self.champion().catalog
        hits = catalog[catalog.title.str.contains(query, case=False, regex=False, na=False)].head(limit)
        return [{"item_id": plain_id(item), "title": title} for item, title in hits.title.items()]

    def profile_fields(self) -> list[tuple[str, list[str]]]:
        """The composed profile's user fields (the contract's segments) with the values users have,
        where there are few enough to choose from."""
        online = self.production.online.value
        known = online.features if online is not None else pd.DataFrame()
        fields = []
        for name in SERVED_CONTRACT.user_segment_columns:
            values = sorted(known[name].dropna().astype(str).unique()) if name in known else []
            fields.append((name, values if len(values) <= MAX_CHOICES else []))
        return fields

    # -- first items ------------------------------------------------------------------------------
    def first_items(self, tag: str, top: int = 5) -> dict[str, pd.DataFrame]:
        """Most frequent first recommendations of a bundle's model and their share of its users:
        ``overall`` and one table per segment column (from the online store's user features)."""
        if tag not in self._first_items:
            bundle = self.bundle(tag)
            model = bundle.model
            firsts = model.recommend(model.user_map.ids, k=1)[["user_id", "item_id"]]
            firsts["title"] = bundle.catalog.title.reindex(firsts.item_id).to_numpy()
            tables = {"overall": _shares(firsts, None, top)}
            online = self.production.online.value
            if online is not None:
                features = pd.DataFrame([(online.get(u).features if online.get(u) else {}) for u in firsts.user_id])
                for column in SEGMENT_COLUMNS:
                    if column in features:
                        segment = features[column].fillna("unknown").to_numpy()
                        tables[column] = _shares(firsts.assign(**{column: segment}), column, top)
            self._first_items[tag] = tables
        return self._first_items[tag]

    # -- admin actions --------------------------------------------------------------------------
    def authorized(self, request: HttpRequest) -> bool:
        given = request.headers.get("authorization", "")
        expected = f"Bearer {self.admin.token}" if self.admin.token else None
        return expected is not None and hmac.compare_digest(given.encode(), expected.encode())

    def act(self, action: str, body: dict[str, Any], by: str) -> dict[str, Any]:
        """Run one admin action; returns what the alias now says."""
        if action == "promote":
            return self._promote(body, by)
        if action == "alias":
            record = self.registry.set_alias(body["alias"], body["tag"], body.get("reason") or "set from /inspect", by)
        elif action == "rollback":
            record = self.registry.rollback(to=body.get("to") or None, by=by)
        elif action == "shadow":
            record = self.registry.set_shadow_share(body["alias"], float(body["share"]), by)
        else:
            raise KeyError(f"unknown admin action {action!r}")
        return {"alias": record.alias, "tag": record.tag, "shadow_share": record.shadow_share}

    def _promote(self, body: dict[str, Any], by: str) -> dict[str, Any]:
        """A challenger alias to champion (through the shadow gate when it is on), or a tag."""
        if "challenger" in body:
            comparison = self.shadow_row(body["challenger"])
            record = promote_challenger(self.registry, body["challenger"], by, comparison, gate=self.admin.shadow_gate)
        else:
            record = self.registry.promote(body["tag"], body.get("reason") or "promoted from /inspect", by=by)
        return {"alias": record.alias, "tag": record.tag, "shadow_share": record.shadow_share}

    def shadow_row(self, alias: str) -> dict[str, float] | None:
        table = _read(self.paths.online / "shadow.parquet")
        rows = table[table.challenger == alias].to_dict("records") if len(table) else []
        return rows[0] if rows else None

    # -- reports --------------------------------------------------------------------------------
    def experiments(
        self, recommender: str | None, data_version: str | None
    ) -> tuple[pd.DataFrame, dict[str, list[str]]]:
        table = experiments_table(self.paths.experiments)
        if table.empty:
            return table, {"recommender": [], "data_version": []}
        options = {column: sorted(table[column].unique()) for column in ("recommender", "data_version")}
        if recommender:
            table = table[table.recommender == recommender]
        if data_version:
            table = table[table.data_version == data_version]
        return table.sort_values(["recorded_at", "recommender", "chosen"], ascending=[False, True, False]), options

    def online_tables(self) -> dict[str, pd.DataFrame]:
        history = pd.DataFrame([vars(entry) for entry in self.registry.history()[-50:]][::-1])
        return {
            "online metrics": _read(self.paths.online / "metrics.parquet"),
            "shadow comparison": _read(self.paths.online / "shadow.parquet"),
            "alias history": history,
        }


def explanations(bundle: ServingBundle, result: Answer) -> list[str]:
    """One sentence per listed item of a two-stage answer (sources, top contributions); else none."""
    if not bundle.model.ranks_at_request_time or not result.ranker_features:
        return []
    return [explanation.sentence() for explanation in bundle.model.explain(result.ranker_features)]


def _shares(firsts: pd.DataFrame, by: str | None, top: int) -> pd.DataFrame:
    """The ``top`` first items of each value of column ``by`` (all users when None), with their share."""
    column = by or "users"
    if by is None:
        firsts = firsts.assign(users="all")
    counts = firsts.groupby([column, "item_id", "title"]).size().rename("count").reset_index()
    counts["share"] = counts["count"] / counts.groupby(column)["count"].transform("sum")
    ordered = counts.sort_values([column, "count", "item_id"], ascending=[True, False, True])
    return ordered.groupby(column).head(top).reset_index(drop=True)


def _read(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path) if path.exists() else pd.DataFrame()


def _table_html(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "<p class='empty'>nothing yet</p>"
    return frame.to_html(index=False, float_format=lambda v: f"{v:.4f}", border=0, classes="data", na_rep="")


# -- the ASGI app ---------------------------------------------------------------------------------


def build_app(inspector: Callable[[], Inspector]) -> Starlette:
    """The Starlette app; ``inspector()`` returns the serving process's ``Inspector``."""

    def render(name: str, **context: Any) -> HTMLResponse:
        return HTMLResponse(TEMPLATES.get_template(name).render(table_html=_table_html, **context))

    async def compare_page(request: HttpRequest) -> Response:
        inspect = inspector()
        params = request.query_params
        keys = params.getlist("list") or ["alias:champion", "baseline:popularity"]
        lists, error, profile = [], None, params.get("mode") == "profile"
        try:
            if profile or params.get("user_id"):
                lists = inspect.compare(keys, _request_from(params, profile), profile)
        except (LookupError, ValueError) as problem:
            error = str(problem)
        counts = pd.Series([item.item_id for shown in lists for item in shown.items]).value_counts()
        shared = {plain_id(item) for item, n in counts.items() if n > 1}
        return render(
            "compare.html", choices=inspect.choices(), chosen=keys, lists=lists, shared=shared, params=params,
            error=error, profile=profile, profile_fields=inspect.profile_fields(),
            numeric_ids=SERVED_CONTRACT.user_id_type == "integer",
        )  # fmt: skip

    async def bundle_page(request: HttpRequest) -> Response:
        tag = request.path_params["tag"]
        return render("bundle.html", tag=tag, tables=inspector().first_items(tag))

    async def experiments_page(request: HttpRequest) -> Response:
        recommender, version = request.query_params.get("recommender"), request.query_params.get("data_version")
        table, options = inspector().experiments(recommender, version)
        return render("experiments.html", table=table, options=options, recommender=recommender, version=version)

    async def online_page(request: HttpRequest) -> Response:
        inspect = inspector()
        return render("online.html", tables=inspect.online_tables(), dagster=inspect.admin.dagster_url)

    async def items_api(request: HttpRequest) -> Response:
        return JSONResponse(inspector().search_items(request.query_params.get("q", "")))

    async def admin_api(request: HttpRequest) -> Response:
        inspect = inspector()
        if not inspect.authorized(request):
            return JSONResponse(
                {"error": "a valid 'Authorization: Bearer <token>' header is required"}, status_code=401
            )
        try:
            body = await request.json()
            by = f"admin via /inspect ({request.client.host if request.client else 'unknown'})"
            # In a thread: verifying the bundle an alias moves to takes seconds, and the event
            # loop keeps answering /recommend meanwhile.
            return JSONResponse(await run_in_threadpool(inspect.act, request.path_params["action"], body, by))
        except PromotionRefused as refusal:
            return JSONResponse({"error": f"the shadow gate refused: {refusal}"}, status_code=409)
        except BundleRefused as refusal:
            return JSONResponse({"error": str(refusal)}, status_code=409)
        except (KeyError, LookupError, ValueError, TypeError, json.JSONDecodeError) as problem:
            return JSONResponse({"error": str(problem)}, status_code=400)

    return Starlette(
        routes=[
            Route("/", compare_page),
            Route("/bundle/{tag:path}", bundle_page),
            Route("/experiments", experiments_page),
            Route("/online", online_page),
            Route("/api/items", items_api),
            Route("/api/admin/{action}", admin_api, methods=["POST"]),
        ]
    )


def parse_id(text: str, id_type: str, field: str) -> int | str:
    """An id typed into a page, as the dataset contract's id type; a ValueError names the field."""
    text = text.strip()
    if id_type == "string":
        if not text:
            raise ValueError(f"{field} is empty")
        return text
    if not text.isdigit():
        raise ValueError(f"{field} must be a whole number, got {text!r}")
    return int(text)


def _request_from(params: Any, profile: bool) -> Request:
    """The recommendation request a page query describes (a user, or a composed profile)."""
    k = int(params.get("k") or 10)
    if not 1 <= k <= 100:
        raise ValueError("k must be between 1 and 100")
    if not profile:
        return Request(parse_id(params["user_id"], SERVED_CONTRACT.user_id_type, "user_id"), k)
    items = [parse_id(item, SERVED_CONTRACT.item_id_type, "item") for item in params.getlist("item") if item]
    features = {name: params[name] for name in SERVED_CONTRACT.user_segment_columns if params.get(name)}
    return Request(PROFILE_USER, k, items, features or None)
