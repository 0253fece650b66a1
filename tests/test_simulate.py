"""``recs-platform simulate --fast`` end to end: it lands MovieLens history, trains in-process,
starts the API, replays a week day by day with feedback, retrains, and reports per week."""

import json
import os
import subprocess
import sys
from pathlib import Path

from recs_platform.settings import PlatformPaths

REPO = Path(__file__).resolve().parent.parent
MOVIELENS = Path(os.environ.get("RECS_MOVIELENS_DIR", REPO.parent / "shared" / "data" / "ml-100k"))


def test_simulate_fast_runs_the_loop_end_to_end(tmp_path):
    env = {**os.environ, "RECS_HOME": str(tmp_path), "RECS_ENV": "ci", "RECS_GATE_MIN_METRIC": "0.0"}
    env.pop("DAGSTER_HOME", None)
    command = [
        sys.executable,
        "-m",
        "assets.cli",
        "simulate",
        "--fast",
        "--start-week",
        "6",
        "--source",
        str(MOVIELENS),
    ]
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads((PlatformPaths(tmp_path).online / "simulation.json").read_text())
    (week,) = {row["week"] for row in report["weeks"]}
    assert week == 1 and sum(row["requests"] for row in report["weeks"]) > 10
    assert any(row["fresh_history_share"] > 0 for row in report["weeks"])
    assert [r["reason"] for r in report["retrains"]] == ["new data"]
    assert report["retrains"][0]["deployment"] in ("deployed", "already_serving")
    assert "consumption_rate@10" in result.stdout and "retrains: 1" in result.stdout
    served = list(PlatformPaths(tmp_path).serving_logs.glob("*.jsonl"))
    assert served and sum(len(p.read_text().splitlines()) for p in served) == sum(
        r["requests"] for r in report["weeks"]
    )
