"""The dbt project handle, with its manifest parsed when missing."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from dagster_dbt import DbtCliResource, DbtProject

PROJECT_DIR = Path(__file__).resolve().parent.parent / "dbt_project"
# The dbt next to this interpreter, so a non-activated virtualenv still finds it.
DBT_EXECUTABLE = (
    str(Path(sys.executable).parent / "dbt")
    if (Path(sys.executable).parent / "dbt").exists()
    else shutil.which("dbt") or "dbt"
)

dbt_project = DbtProject(project_dir=PROJECT_DIR, profiles_dir=PROJECT_DIR)
if not dbt_project.manifest_path.exists():
    # `dagster dev` would re-parse on every load via prepare_if_dev; every other entry point
    # (tests, job execution, the daemon) needs a manifest before the definitions can load.
    DbtCliResource(project_dir=dbt_project, dbt_executable=DBT_EXECUTABLE).cli(
        ["parse"], target_path=dbt_project.target_path
    ).wait()
