"""The inspection page in a real browser (Debian's Chromium driven by Playwright), and the admin
actions over HTTP: 401 without the token, 200 with it, every action in the alias history."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from test_serving import SERVER_ENV, online_state, publish

from recs_platform.artifacts import ModelArtifact
from recs_platform.experiments import record_sweep
from recs_platform.models import EASERecommender, ItemKNNRecommender
from recs_platform.online.store import export_snapshot
from recs_platform.registry import ModelRegistry
from recs_platform.serving.launcher import ServerHandle, start_server
from recs_platform.serving.model import production_registry
from recs_platform.settings import PlatformPaths
from recs_platform.sweeps import SweepConfig, SweepResult

CHROMIUM = Path("/usr/bin/chromium")
TOKEN = "not-a-real-secret-5e8f"


@dataclass
class Inspected:
    home: Path
    registry: ModelRegistry
    server: ServerHandle
    champion: str
    challenger: str

    def admin(self, action: str, body: dict, token: str | None = TOKEN) -> httpx.Response:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        return httpx.post(f"{self.server.url}/inspect/api/admin/{action}", json=body, headers=headers, timeout=30)


@pytest.fixture(scope="module")
def inspected(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Inspected]:
    home = tmp_path_factory.mktemp("inspect-home")
    registry = production_registry(PlatformPaths(home))
    champion = publish(registry, home / "work", EASERecommender(l2=10.0), "ease")
    challenger = publish(registry, home / "work", ItemKNNRecommender(neighbors=5), "knn")
    registry.rollback(by="test")
    registry.set_alias("challenger", challenger, "look first", by="test")
    export_snapshot(online_state(), PlatformPaths(home).online)
    artifact = ModelArtifact("ease", "unused", "v1", "c", {"l2": 10.0}, True, 0.5, valid={"ndcg@10": 0.31})
    record_sweep(
        PlatformPaths(home).experiments,
        "v1",
        "ease",
        [SweepResult(SweepConfig("ease", "c0_ab", {"l2": 10.0}), artifact)],
        "c0_ab",
        "run-1",
    )
    server = start_server(home, env={**SERVER_ENV, "RECS_ADMIN_TOKEN": TOKEN})
    try:
        yield Inspected(home, registry, server, champion, challenger)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is missing: `make test` installs it (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM))
        yield launched
        launched.close()


def test_two_bundles_side_by_side_for_a_user_and_a_composed_profile(inspected, browser, tmp_path):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{inspected.server.url}/inspect/")
    page.fill("input[name=user_id]", "1")
    for key in ("alias:champion", "alias:challenger"):
        page.check(f"input[name=list][value='{key}']")
    page.uncheck("input[name=list][value='baseline:popularity']")
    page.click("#compare")
    lists = page.locator(".list")
    assert lists.count() == 2
    assert [lists.nth(i).locator("li.item").count() for i in range(2)] == [10, 10]
    assert inspected.champion in lists.nth(0).inner_text() and inspected.challenger in lists.nth(1).inner_text()
    shared = page.locator("li.shared")
    assert shared.count() >= 2  # the EASE and item-kNN lists share items, highlighted in both
    assert set(shared.evaluate_all("items => items.map(i => i.dataset.item)")) <= set(
        lists.nth(0).locator("li.item").evaluate_all("items => items.map(i => i.dataset.item)")
    )
    page.screenshot(path=str(tmp_path / "compare-user.png"), full_page=True)

    # A composed profile: demographics and two liked items found by title search.
    page.check("input[name=mode][value=profile]")
    page.select_option("select[name=age_bucket]", "25-34")
    page.select_option("select[name=gender]", "F")
    for title, item in (("Movie 3", "3"), ("Movie 7", "7")):
        page.fill("#item-search", title)
        page.wait_for_function("document.querySelectorAll('#item-options option').length > 0")
        page.fill("#item-search", item)
        page.dispatch_event("#item-search", "change")
    page.check("input[name=list][value='baseline:segment']")
    page.click("#compare")
    profile_lists = page.locator(".list")
    assert profile_lists.count() == 3
    for i in range(3):
        shown = profile_lists.nth(i).locator("li.item").evaluate_all("items => items.map(i => i.dataset.item)")
        assert shown and not {"3", "7"} & set(shown)  # the liked items are the history, never recommended
    assert "model+fresh_history" in profile_lists.nth(0).inner_text()  # EASE scored the composed history
    page.screenshot(path=str(tmp_path / "compare-profile.png"), full_page=True)
    assert (tmp_path / "compare-profile.png").stat().st_size > 10_000


def test_the_first_item_table_per_bundle_and_segment(inspected, browser, tmp_path):
    page = browser.new_page()
    page.goto(f"{inspected.server.url}/inspect/bundle/{inspected.challenger}")
    overall = page.locator("#first-overall + table")
    assert overall.locator("tbody tr").count() >= 1
    shares = [float(cell) for cell in overall.locator("tbody tr td:last-child").all_inner_texts()]
    assert shares == sorted(shares, reverse=True) and 0 < shares[0] <= 1
    assert page.locator("#first-age_bucket + table").count() == 1 and page.locator("#first-gender + table").count() == 1
    page.screenshot(path=str(tmp_path / "first-items.png"), full_page=True)


def test_experiments_and_online_pages(inspected, browser):
    page = browser.new_page()
    page.goto(f"{inspected.server.url}/inspect/experiments?recommender=ease")
    assert "c0_ab" in page.locator("#experiments").inner_text() and "0.3100" in page.content()
    page.goto(f"{inspected.server.url}/inspect/online")
    assert "alias history" in page.content() and "look first" in page.content()
    assert page.locator("a[href$='/assets/shadow_comparison']").count() == 1


def test_admin_actions_need_the_token_and_land_in_the_history(inspected):
    assert inspected.admin("shadow", {"alias": "challenger", "share": 0.25}, token=None).status_code == 401
    assert inspected.admin("shadow", {"alias": "challenger", "share": 0.25}, token="wrong").status_code == 401
    assert inspected.admin("shadow", {"alias": "challenger", "share": 0.25}).json()["shadow_share"] == 0.25
    assert inspected.admin("alias", {"alias": "challenger-b", "tag": inspected.champion}).status_code == 200
    assert inspected.admin("alias", {"alias": "production", "tag": inspected.champion}).status_code == 400
    promoted = inspected.admin("promote", {"challenger": "challenger"}).json()
    assert promoted == {"alias": "champion", "tag": inspected.challenger, "shadow_share": 1.0}
    back = inspected.admin("rollback", {"to": inspected.champion}).json()
    assert back["tag"] == inspected.champion
    history = inspected.registry.history()[-5:]
    assert [(h.alias, h.tag) for h in history] == [
        ("challenger", inspected.challenger),
        ("challenger-b", inspected.champion),
        ("champion", inspected.challenger),
        ("challenger", None),
        ("champion", inspected.champion),
    ]
    assert all(h.by.startswith("admin via /inspect") for h in history)
    # The recommendation endpoint stays open, and no page ever shows the token.
    assert httpx.post(f"{inspected.server.url}/recommend", json={"user_id": 1}).status_code == 200
    for path in ("/inspect/", "/inspect/online", "/inspect/experiments"):
        assert TOKEN not in httpx.get(inspected.server.url + path).text


def test_an_admin_move_to_a_bundle_that_fails_verification_is_refused(inspected):
    broken = inspected.home / "work" / "broken"
    broken.mkdir(parents=True)
    (broken / "bundle.json").write_text("{}")  # no model, fallback or items
    tag = inspected.registry.register(broken, {}, {})
    aliases = inspected.registry.aliases()
    for action, body in (("alias", {"alias": "challenger-broken", "tag": tag}), ("promote", {"tag": tag})):
        refused = inspected.admin(action, body)
        assert refused.status_code == 409
        assert refused.json()["error"].startswith(f"{tag} failed verification: it could not be loaded (")
    assert inspected.registry.aliases() == aliases
    assert [(r.alias, r.tag) for r in inspected.registry.refusals()] == [("challenger-broken", tag), ("champion", tag)]


def test_the_shadow_gate_refuses_a_promotion_without_enough_shadow_evidence(tmp_path):
    registry = production_registry(PlatformPaths(tmp_path))
    champion = publish(registry, tmp_path / "work", EASERecommender(l2=10.0), "ease")
    challenger = publish(registry, tmp_path / "work", ItemKNNRecommender(neighbors=5), "knn")
    registry.rollback(by="test")
    registry.set_alias("challenger", challenger, "try", by="test")
    env = {**SERVER_ENV, "RECS_ADMIN_TOKEN": TOKEN, "RECS_SHADOW_GATE": "true", "RECS_SHADOW_MIN_REQUESTS": "50"}
    server = start_server(tmp_path, env=env)
    try:
        refused = httpx.post(
            f"{server.url}/inspect/api/admin/promote", json={"challenger": "challenger"},
            headers={"authorization": f"Bearer {TOKEN}"},
        )  # fmt: skip
    finally:
        server.stop()
    assert refused.status_code == 409 and "no shadow comparison yet" in json.loads(refused.text)["error"]
    assert registry.production().tag == champion  # a refused gate moves no alias
