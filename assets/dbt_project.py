"""The dbt project handle, with its manifest re-parsed whenever the project changed."""

import shutil
import sys
from functools import cached_property
from importlib.metadata import version as installed_version
from pathlib import Path

from dagster_dbt import DbtCliResource, DbtProject
from packaging import version

PROJECT_DIR = Path(__file__).resolve().parent.parent / "dbt_project"
SOURCE_FOLDERS = ("models", "macros", "tests")
# The dbt next to this interpreter, so a non-activated virtualenv still finds it.
_LOCAL_DBT = Path(sys.executable).parent / "dbt"
DBT_EXECUTABLE = str(_LOCAL_DBT) if _LOCAL_DBT.exists() else shutil.which("dbt") or "dbt"

dbt_project = DbtProject(project_dir=PROJECT_DIR, profiles_dir=PROJECT_DIR)


class LocalDbtCliResource(DbtCliResource):
    """dagster-dbt's resource, minus a ``dbt --version`` subprocess per step.

    dagster-dbt asks the executable for its version before every invocation, and a step's resource
    is new each time: 4 s of dbt imports per dbt step here. The dbt next to this interpreter is the
    dbt-core package installed with it, so its version is read from the package metadata.
    """

    @cached_property
    def _cli_version(self) -> version.Version:
        if Path(self.dbt_executable) == _LOCAL_DBT:
            return version.parse(installed_version("dbt-core"))
        return super()._cli_version


def _manifest_is_stale() -> bool:
    """True when the manifest is missing or older than any model, macro, test or project file."""
    manifest = dbt_project.manifest_path
    if not manifest.exists():
        return True
    sources = [PROJECT_DIR / "dbt_project.yml"] + [p for f in SOURCE_FOLDERS for p in (PROJECT_DIR / f).rglob("*")]
    return max(p.stat().st_mtime for p in sources if p.is_file()) > manifest.stat().st_mtime


# Definitions need a manifest that matches the project, whatever the entry point (tests, job
# execution, the daemon, `dagster dev`); parsing takes a few seconds and only runs on change.
if _manifest_is_stale():
    LocalDbtCliResource(project_dir=dbt_project, dbt_executable=DBT_EXECUTABLE).cli(
        ["parse"], target_path=dbt_project.target_path
    ).wait()
