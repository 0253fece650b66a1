"""The experiment record: every sweep configuration of every run, and what was measured on test.

Each model asset writes one JSON per run (``<root>/sweeps/<data version>/<recommender>-<run>.json``)
with every configuration's parameters, validation metrics and fit time and which one was chosen;
the evaluation suite writes the test metrics (accuracy, beyond-accuracy and custom metrics) of
the chosen models (``<root>/evaluations/<data version>.json``). ``experiments_table`` joins them
for the inspection page.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from recs_platform.files import write_json_atomically
from recs_platform.sweeps import SweepResult


def record_sweep(
    root: Path, data_version: str, recommender: str, results: Sequence[SweepResult], chosen: str, run_id: str
) -> Path:
    """Write one run's configurations of one recommender."""
    record = {
        "recommender": recommender,
        "data_version": data_version,
        "run_id": run_id,
        "recorded_at": datetime.now(UTC).isoformat(),
        "configurations": [
            {
                "config_id": result.config.config_id,
                "params": result.config.params,
                "valid": result.valid,
                "fit_seconds": round(result.fit_seconds, 3),
                "chosen": result.config.config_id == chosen,
                **({"skipped": result.skipped} if result.skipped else {}),
            }
            for result in results
        ],
    }
    path = root / "sweeps" / data_version / f"{recommender}-{run_id}.json"
    write_json_atomically(path, record)
    return path


def record_evaluation(root: Path, data_version: str, summaries: dict[str, dict[str, float]]) -> Path:
    """Write the test metrics of each evaluated model of one dataset version."""
    path = root / "evaluations" / f"{data_version}.json"
    write_json_atomically(path, summaries)
    return path


def experiments_table(root: Path) -> pd.DataFrame:
    """One row per configuration of every recorded run: recommender, data version, run, params,
    ``valid_*`` metrics, fit seconds, whether it was chosen, and for chosen ones ``test_*`` metrics."""
    rows: list[dict[str, Any]] = []
    tests = {path.stem: json.loads(path.read_text()) for path in (root / "evaluations").glob("*.json")}
    for path in sorted((root / "sweeps").glob("*/*.json")):
        record = json.loads(path.read_text())
        measured = tests.get(record["data_version"], {}).get(record["recommender"], {})
        for config in record["configurations"]:
            rows.append(
                {
                    "recommender": record["recommender"],
                    "data_version": record["data_version"],
                    "run_id": record["run_id"],
                    "recorded_at": record["recorded_at"],
                    "config_id": config["config_id"],
                    "chosen": config["chosen"],
                    "params": json.dumps(config["params"], sort_keys=True),
                    **{f"valid_{name}": value for name, value in config["valid"].items()},
                    "fit_seconds": config["fit_seconds"],
                    **({f"test_{name}": value for name, value in measured.items()} if config["chosen"] else {}),
                }
            )
    return pd.DataFrame(rows)
