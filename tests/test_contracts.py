"""The declared dataset contract: parsing, the dbt default, the generator's shapes, and the whole
graph on three differently shaped datasets through deployment and a served request."""

import json
import shutil
from pathlib import Path

import httpx
import pytest
import yaml

from recs_platform.data import synthetic
from recs_platform.data.contract import ContractError, load_contract, parse_contract, save_to_home
from recs_platform.serving.answer import Request, answer
from recs_platform.serving.launcher import start_server
from recs_platform.serving.model import production_registry
from recs_platform.settings import PlatformPaths
from tests.test_pipeline import REPO, run_pipeline

VALID = {"ids": {"users": "string", "items": "integer"}, "events": {"click": {}}, "users": None, "items": None}
SMALL = synthetic.SyntheticConfig(n_users=200, n_items=150, n_events=6000, days=30, seed=3)
FAST_SWEEPS = ("popularity", "ease")  # CI's sweep files of these recommenders: enough to deploy, quick to train


# -- parsing ------------------------------------------------------------------------------------


def test_the_three_shipped_contracts_load() -> None:
    shop, tracks, movielens = (load_contract(name) for name in ("shop", "tracks", "movielens"))
    assert (shop.user_id_type, shop.item_id_type, shop.has_catalog("users")) == ("string", "string", False)
    assert tracks.item_date_column is None and tracks.diversity_column.name == "artists"
    assert movielens.user_segment_columns == ["age_bucket", "gender", "occupation"]
    assert movielens.positive_weights["purchase"] == 3.0 and "impression" not in movielens.positive_weights


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"ids": {"users": "uuid"}}, "'ids.users'"),
        ({"events": {}}, "'events'"),
        ({"events": {"view": {"positive": False}}}, "no event type is positive"),
        ({"events": {"click": {"weight": True}}}, "'events.click.weight'"),
        ({"items": {"price": {"kind": "money"}}}, "'items.price.kind'"),
        ({"items": {"Price": {"kind": "numeric"}}}, "'items.Price'"),
        ({"users": {"age": {"kind": "categorical", "buckets": [18]}}}, "'users.age.buckets'"),
        ({"title_column": "name"}, "'title_column'"),
    ],
)
def test_a_wrong_setting_is_one_sentence_naming_it(change: dict, named: str) -> None:
    with pytest.raises(ContractError, match="contract shop.yaml: .*" + named.replace("(", r"\(")):
        parse_contract({**VALID, **change}, "shop.yaml")


def test_a_missing_or_unparsable_contract_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ContractError, match="does not exist"):
        load_contract(tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("ids: [unclosed")
    with pytest.raises(ContractError, match=r"bad\.yaml is not valid YAML"):
        load_contract(tmp_path / "bad.yaml")


def test_dbt_defaults_to_the_movielens_contract() -> None:
    """The dbt project's own default var is MovieLens' contract, so plain `dbt build` agrees with runs."""
    project = yaml.safe_load((REPO / "dbt_project" / "dbt_project.yml").read_text())
    assert project["vars"]["contract"] == json.loads(json.dumps(load_contract("movielens").dbt_vars()))


# -- the generator ------------------------------------------------------------------------------


def test_the_generator_emits_any_contracts_shape() -> None:
    data = synthetic.generate(SMALL)
    same = synthetic.shaped_for_contract(data, load_contract("movielens"))  # MovieLens' shape is the identity
    for shaped, source in ((same.events, data.events), (same.users, data.users), (same.items, data.items)):
        assert shaped.equals(source[shaped.columns]) and set(shaped.columns) == set(source.columns)
    shop = synthetic.shaped_for_contract(data, load_contract("shop"))
    assert shop.users.empty and shop.events.user_id.str.match(r"^user-\d{6}$").all()
    assert set(shop.events.event_type) <= {"click", "add_to_cart", "purchase"}
    assert list(shop.items.columns) == ["item_id", "category", "price", "tags", "launched", "name"]
    tracks = synthetic.shaped_for_contract(data, load_contract("tracks"))
    assert tracks.items.artists.str.replace(";", "|").equals(data.items.genres)  # the signal is kept
    assert set(tracks.users.columns) == {"user_id", "country"} and tracks.events.event_type.eq("play").all()


# -- the whole graph on three shapes -------------------------------------------------------------


# The MovieLens contract's graph runs in test_pipeline.py (real data) and test_online_loop.py.
@pytest.fixture(scope="module", params=["shop", "tracks"])
def deployed_home(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """Synthetic data in the contract's shape, landed and run through the whole graph."""
    name = request.param
    home = tmp_path_factory.mktemp(f"home-{name}")
    contract = save_to_home(REPO / "config" / "contracts" / f"{name}.yaml", home)
    data = synthetic.shaped_for_contract(synthetic.generate(SMALL), contract)
    synthetic.write_to_landing(data, PlatformPaths(home).landing)
    sweeps = home / "sweeps"
    sweeps.mkdir()
    for recommender in FAST_SWEEPS:
        shutil.copy(REPO / "config" / "recommenders.ci" / f"{recommender}.yaml", sweeps)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RECS_SWEEPS", str(sweeps))
        patch.setenv("RECS_GATE_MIN_METRIC", "0.01")
        patch.delenv("RECS_CONTRACT", raising=False)
        result = run_pipeline(home)
    assert result.success, name
    return name, home


def test_the_graph_deploys_and_serves_every_shape(deployed_home: tuple[str, Path]) -> None:
    name, home = deployed_home
    contract = load_contract(name)
    registry = production_registry(PlatformPaths(home))
    champion = registry.load_production()
    user = champion.model.user_map.ids[0].item()
    assert isinstance(user, str) == (contract.user_id_type == "string")
    result = answer(champion, Request(user, 5), None)
    assert result.source == "model" and len(result.item_ids) == 5
    assert all(isinstance(item, str) == (contract.item_id_type == "string") for item in result.item_ids)
    if not contract.has_catalog("users"):
        assert champion.segment is None or not len(champion.segment.segment_keys)
    if contract.item_date_column is None:
        assert "release_year" not in champion.catalog


def test_a_string_id_dataset_is_served_over_http_in_its_own_id_type(deployed_home: tuple[str, Path]) -> None:
    name, home = deployed_home
    if name != "shop":
        pytest.skip("the HTTP check runs on the string-id dataset")
    server = start_server(home)
    try:
        answered = httpx.post(f"{server.url}/recommend", json={"user_id": "user-000001", "k": 3}, timeout=30)
        assert answered.status_code == 200, answered.text
        body = answered.json()
        assert body["user_id"] == "user-000001" and len(body["items"]) == 3
        assert all(item["item_id"].startswith("item-") for item in body["items"])
        wrong = httpx.post(f"{server.url}/recommend", json={"user_id": 1, "k": 3}, timeout=30)
        assert wrong.status_code == 400 and "user_id" in wrong.text
        recent = httpx.post(f"{server.url}/recommend", json={"user_id": "user-999999", "recent_items": [7]}, timeout=30)
        assert recent.status_code == 400 and "recent_items" in recent.text
    finally:
        server.stop()
