"""The library's layers import downward only, and no library module imports Dagster or assets.

Every import counts, including those inside functions: a lazy import is still a dependency.
"""

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
LIBRARY = REPO / "recs_platform"

# Lowest first. A module may import its own layer and the layers before it, never one after it.
LAYERS = (
    ("base", ("recs_platform", "recs_platform.settings", "recs_platform.versioning", "recs_platform.artifacts",
              "recs_platform.supervisor", "recs_platform.files", "recs_platform.console")),
    ("data", ("recs_platform.data",)),
    ("validation", ("recs_platform.validation",)),
    ("models", ("recs_platform.models",)),
    ("evaluation", ("recs_platform.evaluation",)),
    ("training", ("recs_platform.training", "recs_platform.sweeps", "recs_platform.experiments")),
    ("registry", ("recs_platform.registry",)),
    ("deployment", ("recs_platform.deployment",)),
    ("monitoring", ("recs_platform.monitoring",)),
    ("online", ("recs_platform.online",)),
    ("serving", ("recs_platform.serving",)),
    ("cli", ("recs_platform.cli",)),
)  # fmt: skip
FORBIDDEN = ("dagster", "dagster_dbt", "dagster_pandera", "assets")


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(source: str) -> set[str]:
    """Absolute module names imported anywhere in ``source`` (``from a import b`` counts ``a`` and ``a.b``)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def layer_of(module: str) -> int | None:
    """Index in ``LAYERS`` of the longest matching prefix; None for modules outside the library."""
    best, best_length = None, -1
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_length:
                best, best_length = index, len(prefix)
    return best


def upward_imports(modules: dict[str, str]) -> list[str]:
    """``importer -> imported`` for every import of a higher layer or of Dagster / assets."""
    problems = []
    for name, source in modules.items():
        own = layer_of(name)
        for imported in sorted(imports_of(source)):
            if imported.split(".")[0] in FORBIDDEN:
                problems.append(f"{name} -> {imported} (the library never imports Dagster or assets)")
                continue
            target = layer_of(imported)
            if target is not None and target > own:
                problems.append(f"{name} ({LAYERS[own][0]}) -> {imported} ({LAYERS[target][0]})")
    return problems


def import_cycles(modules: dict[str, str]) -> list[list[str]]:
    """Cycles among library modules (each one found once, from its smallest member)."""
    graph = {name: {i for i in imports_of(source) if i in modules and i != name} for name, source in modules.items()}
    cycles = []

    def visit(start: str, node: str, path: list[str]) -> None:
        for nxt in sorted(graph[node]):
            if nxt == start:
                cycles.append([*path, start])
            elif nxt > start and nxt not in path:
                visit(start, nxt, [*path, nxt])

    for name in sorted(graph):
        visit(name, name, [name])
    return cycles


@pytest.fixture(scope="module")
def library() -> dict[str, str]:
    return {module_name(path): path.read_text() for path in sorted(LIBRARY.rglob("*.py"))}


def test_every_library_module_has_a_layer(library):
    assert [name for name in library if layer_of(name) is None] == []


def test_layers_import_downward_only(library):
    assert upward_imports(library) == []


def test_library_modules_import_no_cycle(library):
    assert import_cycles(library) == []


def test_the_checker_catches_an_upward_import_and_a_cycle(library):
    tampered = dict(library)
    tampered["recs_platform.models.base"] += (
        "\n\ndef _late():\n    from recs_platform.evaluation.evaluate import evaluate\n"
    )
    tampered["recs_platform.data.events"] += "\nimport dagster\n"
    problems = upward_imports(tampered)
    assert "recs_platform.models.base (models) -> recs_platform.evaluation.evaluate (evaluation)" in problems
    assert any(p.startswith("recs_platform.data.events -> dagster") for p in problems)
    tampered = {"a.x": "import a.y\n", "a.y": "from a import x\n"}
    assert import_cycles(tampered) == [["a.x", "a.y", "a.x"]]
