"""What ``recs-platform run`` prints: progress lines and a closing summary by default (short,
plain on a pipe), one JSON document with ``--json``, the event stream with ``--verbose``, and
one sentence when a run fails. The CLI runs in-process on a small synthetic landing zone."""

import contextlib
import io
import json
import re
from pathlib import Path

import dagster as dg
import pytest
from rich.console import Console

from assets import cli
from assets.progress import Estimate, EventRouter, NodeOutcome, RunRecord, follow_run
from assets.summary import RunSummary, summary_of_runs
from recs_platform.data import synthetic
from recs_platform.settings import PlatformPaths

# Three quick recommenders: two baselines and one learned model (so the gates have work to do).
SWEEPS = "popularity: {}\ncooccurrence: {}\nease:\n  params: {l2: 200.0}\n"


def environment(patch: pytest.MonkeyPatch, root: Path) -> Path:
    """A fresh home and Dagster instance under ``root``; returns the home."""
    (root / "dagster").mkdir(parents=True)
    (root / "dagster" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    (root / "sweeps.yaml").write_text(SWEEPS)
    for name, value in {
        "RECS_HOME": root / "home",
        "DAGSTER_HOME": root / "dagster",
        "RECS_SWEEPS": root / "sweeps.yaml",
        "RECS_ENV": "ci",
        "RECS_GATE_MIN_METRIC": "0.0",
    }.items():
        patch.setenv(name, str(value))
    return root / "home"


def run_cli(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = cli.main(["run", *args])
    return status, out.getvalue()


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """A first run with ``--json``, then a second with the default output, in one home."""
    root = tmp_path_factory.mktemp("cli-output")
    with pytest.MonkeyPatch.context() as patch:
        home = environment(patch, root)
        config = synthetic.SyntheticConfig(n_users=150, n_items=200, n_events=6000, days=20, seed=3)
        synthetic.write_to_landing(synthetic.generate(config), PlatformPaths(home).landing)
        first_status, first = run_cli("--json")
        second_status, second = run_cli()
        yield {"home": home, "json": json.loads(first), "text": second, "statuses": (first_status, second_status)}


def test_default_output_is_short_and_holds_the_summary(two_runs):
    text, summary = two_runs["text"], two_runs["json"]
    assert two_runs["statuses"] == (0, 0)
    lines = text.splitlines()
    assert len(lines) < 60, text
    assert "\x1b[" not in text  # a pipe gets no colours or cursor control
    assert not [line for line in lines if "DEBUG" in line or "STEP_START" in line]
    assert re.search(r"^ ?1 of \d+ OK +raw/events \.+ \[ *[\d.]+s\] no new files \(20 already ingested\)", text, re.M)
    assert re.search(rf"^data version +{summary['data_version']}$", text, re.M)
    assert re.search(rf"recommender +valid {summary['metric']} +test {summary['metric']} +configuration", text)
    for gate in ("threshold", "beats_baselines", "no_regression"):
        assert re.search(rf"^ ?{gate} +PASS +test {summary['metric']}", text, re.M)
    assert re.search(r"^deployed +recs-recommender:\w+$", text, re.M)
    assert Path(re.search(r"^log +(\S+)$", text, re.M).group(1)).exists()


def test_the_second_run_shows_the_time_left(two_runs):
    assert re.search(
        r"^Running \d+ steps; about (\d+m )?\d+s left \(as long as the last successful run\)", two_runs["text"]
    )
    costs = json.loads((two_runs["home"] / "logs" / cli.LAST_SUCCESS).read_text())["nodes"]
    assert {"raw__events", "dbt_models", "ease_model", "deployment"} <= set(costs)


def test_json_holds_the_same_figures_as_the_table(two_runs):
    summary, text = two_runs["json"], two_runs["text"]
    assert summary["succeeded"] and summary["failure"] is None and len(summary["run_ids"]) == 2
    assert summary["rows"] == {
        "in": 6000, "loaded": 6000, "quarantined": 0, "files_ingested": 20, "files_already_ingested": 0,
        "in_warehouse": 6000,
    }  # fmt: skip
    assert [entry["name"] for entry in summary["recommenders"]] == ["ease", "cooccurrence", "popularity"]
    for entry in summary["recommenders"]:  # same data, same seeds: the second run reproduces the figures
        assert re.search(rf"^ ?{entry['name']}\b.* {entry['valid']:.4f} +{entry['test']:.4f} +c\d", text, re.M)
    assert [(gate["name"], gate["passed"]) for gate in summary["gates"]] == [
        ("threshold", True), ("beats_baselines", True), ("no_regression", True),
    ]  # fmt: skip
    assert summary["deployment"]["deployed"] and summary["deployment"]["tag"].startswith("recs-recommender:")
    assert Path(summary["log"]).read_text().count("STEP_START") > 10  # the full stream is in the log


def test_a_summary_and_the_progress_come_back_from_the_instance(two_runs):
    summary = two_runs["json"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DAGSTER_HOME", str(two_runs["home"].parent / "dagster"))
        instance = dg.DagsterInstance.get()
    stored = summary_of_runs(instance, summary["run_ids"], Path(summary["log"]))
    assert (stored.data_version, stored.recommenders, stored.gates) == (
        summary["data_version"], summary["recommenders"], summary["gates"],
    )  # fmt: skip
    assert stored.deployment == summary["deployment"]
    record = RunRecord()
    router = EventRouter(record, None, on_warning=print)
    for run_id in summary["run_ids"]:
        assert follow_run(instance, run_id, router, poll_s=0.01).is_success
    assert [node.status for node in record.finished][-1] == "OK"
    assert "deployment" in [node.label for node in record.finished] and record.run_ids == summary["run_ids"]


def test_a_failed_run_ends_with_one_sentence_and_the_log(tmp_path, monkeypatch):
    environment(monkeypatch, tmp_path)  # nothing has landed
    status, text = run_cli()
    assert status == 1
    last = text.strip().splitlines()[-1]
    match = re.fullmatch(r"Run failed at raw_catalogs: no users catalog has landed in \S+ .*\. Full log: (\S+)", last)
    assert match, text
    assert "Traceback" not in text and "Stack Trace" not in text
    assert "Stack Trace" in Path(match.group(1)).read_text()


def test_verbose_brings_back_the_event_stream_and_the_traceback(tmp_path, monkeypatch, capsys):
    environment(monkeypatch, tmp_path)
    assert cli.main(["run", "--verbose"]) == 1
    captured = capsys.readouterr()
    stream = captured.out + captured.err
    assert "STEP_START" in stream and "STEP_FAILURE" in stream and "Stack Trace" in stream
    assert "Run failed at raw_catalogs" in captured.out


def test_the_estimate_counts_what_is_left_of_the_last_run():
    record = RunRecord(started_at=100.0)
    estimate = Estimate({"a": 10.0, "b": 20.0, "c": 30.0})
    assert estimate.remaining(record, now=100.0) == 60.0
    record.finished.append(NodeOutcome("a", status="OK", finished_at=112.0))
    assert estimate.remaining(record, now=117.0) == 45.0  # b and c, less the 5 s spent since a finished
    assert estimate.remaining(record, now=200.0) == 0.0
    assert Estimate({}).remaining(record, now=117.0) is None


def test_synth_and_import_show_progress_over_files(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RECS_HOME", str(tmp_path))
    assert cli.main(["synth", "--users", "40", "--items", "50", "--events", "400", "--days", "8"]) == 0
    out = capsys.readouterr().out
    quarters = re.findall(r"^synthetic events: (\d+)/(\d+) files \([\d.]+s\)$", out, re.M)
    assert [int(done) for done, _ in quarters] == [2, 4, 6, 8] and {total for _, total in quarters} == {"8"}


def test_costs_never_go_negative_when_finishes_arrive_out_of_order():
    record = RunRecord(started_at=100.0)
    late, early = NodeOutcome("train"), NodeOutcome("ingest")
    record._finish(late, "OK", 130.0)
    record._finish(early, "OK", 110.0)
    record._finish(late, "OK", 140.0)  # a node that a later run of the same session finished again
    assert record.costs() == {"ingest": 10.0, "train": 30.0}
    assert Estimate(record.costs()).total == 40.0


def test_an_80_column_terminal_keeps_names_and_figures_whole():
    recommender = {"valid": 0.3312, "test": 0.3420, "candidate": True}
    summary = RunSummary(
        succeeded=True, run_ids=["r"], data_version="1775a9b28722669f", rows={}, metric="ndcg@10",
        recommenders=[
            {**recommender, "name": "segment_popularity", "configuration": "c0 " + "x=1, " * 40},
            {**recommender, "name": "dlae", "configuration": "c4 dropout=0.5, l2=200.0, zero_diagonal=False"},
        ],
        gates=[{"name": "beats_baselines", "passed": True, "reason": "test ndcg@10 0.3420 beats cooccurrence"}],
        deployment={"tag": "recs-recommender:abc"}, failure=None, seconds=62.0, log="/tmp/run.log",
    )  # fmt: skip
    narrow, wide = rendered(summary, 80), rendered(summary, 160)
    assert max(map(len, narrow.splitlines())) <= 80
    assert re.search(r"^ ?segment_popularity \(candidate\) +0\.3312 +0\.3420 +c0 x=1, .*…\s*$", narrow, re.M), narrow
    assert re.search(r"^ ?dlae \(candidate\) +0\.3312 +0\.3420 +c4 dropout=0\.…\s*$", narrow, re.M), narrow
    assert re.search(r"^ ?beats_baselines +PASS +test ndcg@10 0\.3420 beats cooccurrence\s*$", narrow, re.M), narrow
    full = "c4 dropout=0.5, l2=200.0, zero_diagonal=False"
    assert re.search(rf"^ ?dlae \(candidate\) +0\.3312 +0\.3420 +{re.escape(full)}\s*$", wide, re.M), wide


def rendered(summary: RunSummary, width: int) -> str:
    out = io.StringIO()
    summary.render(Console(file=out, width=width, force_terminal=False))
    return out.getvalue()
