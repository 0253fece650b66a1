"""Generated asset names are findable: the README and assets/models.py carry the table of every
model asset, its sweep file, class and module, and it matches the code."""

import inspect
from pathlib import Path

from assets.resources import CONFIG_DIR
from recs_platform.models import RECOMMENDERS

REPO = Path(__file__).resolve().parent.parent
SWEEP_FOLDERS = ("recommenders", "recommenders.neural")


def model_asset_table() -> str:
    """The markdown table, built from the sweep folders and the registered classes."""
    rows = ["| asset | sweep file | class | module |", "|---|---|---|---|"]
    for folder in SWEEP_FOLDERS:
        for sweep in sorted((CONFIG_DIR / folder).glob("*.yaml"), key=order):
            cls = RECOMMENDERS[sweep.stem]
            module = Path(inspect.getfile(cls)).relative_to(REPO).as_posix()
            sweep_file = sweep.relative_to(REPO).as_posix()
            rows.append(f"| `{sweep.stem}_model` | `{sweep_file}` | `{cls.__name__}` | `{module}` |")
    return "\n".join(rows)


def order(sweep: Path) -> tuple[bool, str]:
    """Baselines first, then learned models, each alphabetically."""
    return RECOMMENDERS[sweep.stem].is_learned, sweep.stem


def indented_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines()]


def test_every_registered_recommender_has_a_sweep_file():
    files = {path.stem for folder in SWEEP_FOLDERS for path in (CONFIG_DIR / folder).glob("*.yaml")}
    assert files == set(RECOMMENDERS)


def test_the_readme_and_the_models_module_carry_the_asset_table():
    table = indented_lines(model_asset_table())
    for document in (REPO / "README.md", REPO / "assets" / "models.py"):
        lines = indented_lines(document.read_text())
        start = lines.index(table[0])
        assert lines[start : start + len(table)] == table, document
