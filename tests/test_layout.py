"""The package's arrangement (docs/architecture.md): every import, module-level or inside a function, runs down the
layers, and no module grows past the size a reader takes in at once."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = "inception_resnet"
SRC = Path(__file__).resolve().parents[1] / "src" / PACKAGE

# The layers, bottom first: a module may import from its own layer and the ones below (docs/architecture.md).
LAYERS = [
    {"environment", "markdown", "version", "files", "checks"},
    {"models"},
    {"weights"},
    {"data"},
    {"evaluation", "training"},
    {"inference"},
    {"bench", "study"},
    {"cli"},
    {"__init__", "__main__"},  # the package's own __init__ (re-exports) and ``python -m``: above everything
]
LAYER_OF = {part: rank for rank, parts in enumerate(LAYERS) for part in parts}

# No module is longer than this (docs/architecture.md): a longer one holds more than one responsibility.
MAX_LINES = 400


def module_name(path: Path) -> str:
    """``src/inception_resnet/data/subsets.py`` -> ``inception_resnet.data.subsets`` (a package: its name)."""
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def imported_modules(source: str, name: str, package: bool) -> list[tuple[int, str]]:
    """(line, absolute module) of every import of ``source`` (module ``name``), at any depth of the tree.

    ``from . import x`` names the submodule ``x`` when there is one, else the package itself.
    """
    found: list[tuple[int, str]] = []
    base = name.split(".") if package else name.split(".")[:-1]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = base[: len(base) - (node.level - 1)]
                target = ".".join(anchor + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if node.module is None or node.level == 0:
                for alias in node.names:
                    candidate = f"{target}.{alias.name}"
                    submodule = SRC.parent / Path(*candidate.split("."))
                    if submodule.with_suffix(".py").is_file() or (submodule / "__init__.py").is_file():
                        found.append((node.lineno, candidate))
                    else:
                        found.append((node.lineno, target))
            else:
                found.append((node.lineno, target))
    return found


def layer(module: str) -> int:
    """The layer of one of our modules: that of its first part below the package (the package itself: the top)."""
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else "__init__"
    if top not in LAYER_OF:
        raise AssertionError(f"{module} is in no layer: add {top!r} to LAYERS here and to docs/architecture.md")
    return LAYER_OF[top]


def upward_imports(source: str, name: str, package: bool) -> list[str]:
    """``file:line imports module`` for every import of ``source`` that runs to a layer above its own."""
    own = layer(name)
    return [
        f"{name}:{line} imports {target} (layer {layer(target)} > {own})"
        for line, target in imported_modules(source, name, package)
        if (target == PACKAGE or target.startswith(PACKAGE + ".")) and layer(target) > own
    ]


MODULES = sorted(SRC.rglob("*.py"))


def test_every_import_runs_down_the_layers() -> None:
    assert len(MODULES) > 50
    problems = [
        problem for path in MODULES for problem in upward_imports(path.read_text(), module_name(path), is_package(path))
    ]
    assert not problems, "\n".join(problems)


def test_the_check_sees_imports_inside_functions_and_relative_ones() -> None:
    source = "import torch\n\ndef f():\n    from .. import __version__\n    from ..training.step import x\n"
    assert upward_imports(source, "inception_resnet.models.base", package=False) == [
        "inception_resnet.models.base:4 imports inception_resnet (layer 8 > 1)",
        "inception_resnet.models.base:5 imports inception_resnet.training.step (layer 4 > 1)",
    ]
    assert upward_imports("from . import version\n", "inception_resnet.environment", package=False) == []
    assert imported_modules("from . import subsets\n", "inception_resnet.data", package=True) == [
        (1, "inception_resnet.data.subsets")
    ]
    with pytest.raises(AssertionError, match="add 'newpart' to LAYERS"):
        layer("inception_resnet.newpart.x")


def test_the_bottom_layer_imports_nothing_above_it() -> None:
    for name in ("environment", "markdown", "version", "checks"):
        path = SRC / f"{name}.py"
        ours = [t for _, t in imported_modules(path.read_text(), module_name(path), False) if t.startswith(PACKAGE)]
        assert all(layer(t) == 0 for t in ours), (name, ours)


def test_no_module_is_longer_than_a_reader_takes_in_at_once() -> None:
    lengths = {path.relative_to(SRC).as_posix(): len(path.read_text().splitlines()) for path in MODULES}
    too_long = {name: n for name, n in lengths.items() if n > MAX_LINES}
    assert not too_long, f"over {MAX_LINES} lines (split them along their responsibilities): {too_long}"


def test_the_trainer_is_composed_of_parts_not_mixins() -> None:
    """docs/architecture.md: the loop holds one dataclass of the run's parts; no class of training/ inherits from
    several classes, and none from another class defined in training/ (the way mixins share state); an error
    may refine another error."""
    training = sorted((SRC / "training").glob("*.py"))
    classes = {
        node.name: path.name
        for path in training
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ClassDef)
    }
    mixed = [
        f"{path.name}: {node.name}({', '.join(ast.unparse(b) for b in node.bases)})"
        for path in training
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ClassDef)
        and (
            len(node.bases) > 1
            or any(ast.unparse(b) in classes and not ast.unparse(b).endswith("Error") for b in node.bases)
        )
    ]
    assert "RunParts" in classes and "Trainer" in classes
    assert not mixed, mixed


PACKAGES_WITHOUT_POINTER: set[str] = set()


def docstrings(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text())
    nodes = [tree, *(n for n in ast.walk(tree) if isinstance(n, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)))]
    return [(getattr(n, "lineno", 1), ast.get_docstring(n)) for n in nodes if ast.get_docstring(n)]


def test_every_subpackage_points_to_the_architecture_page() -> None:
    assert (SRC.parents[1] / "docs" / "architecture.md").is_file()
    packages = [p for p in MODULES if is_package(p) and p.parent != SRC]
    assert len(packages) >= 9
    missing = [
        p.parent.relative_to(SRC).as_posix()
        for p in packages
        if p.parent.relative_to(SRC).parts[0] not in PACKAGES_WITHOUT_POINTER
        and "docs/architecture.md" not in (ast.get_docstring(ast.parse(p.read_text())) or "")
    ]
    assert not missing, f"package docstrings without a pointer to docs/architecture.md: {missing}"


def test_docstrings_cite_nothing_outside_the_repository() -> None:
    outside = re.compile(r"architecture/performance reference|reference, section \d|/work/|/home/|notes/", re.I)
    cited = [
        f"{path.relative_to(SRC)}:{line}: {outside.search(text).group(0)}"
        for path in MODULES
        for line, text in docstrings(path)
        if outside.search(text)
    ]
    assert not cited, cited


def import_graph() -> dict[str, set[str]]:
    """Module -> the modules of ours it imports (at any depth of its tree; a package import: its ``__init__``)."""
    names = {module_name(path) for path in MODULES}
    graph: dict[str, set[str]] = {}
    for path in MODULES:
        name = module_name(path)
        targets = {target for _, target in imported_modules(path.read_text(), name, is_package(path))}
        graph[name] = {t for t in targets if t in names and t != name}
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import circles of ``graph``: its strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_circle_not_even_through_imports_inside_functions() -> None:
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    found = circles(import_graph())
    assert not found, f"import circles: {found}"


def test_one_cpu_inference_entry_point() -> None:
    """optimize_for_inference is defined once (inference/optimize.py) and nothing it calls imports that module."""
    defining = [p.relative_to(SRC).as_posix() for p in MODULES if "def optimize_for_inference(" in p.read_text()]
    assert defining == ["inference/optimize.py"]
    graph = import_graph()
    callers = sorted(m for m, targets in graph.items() if "inception_resnet.inference.optimize" in targets)
    assert all(not m.startswith("inception_resnet.inference.") or m == "inception_resnet.inference" for m in callers), (
        callers
    )


def test_each_set_of_precisions_is_defined_once() -> None:
    definitions = re.compile(r"^(\w*PRECISIONS)\s*=", re.M)
    found = sorted(
        (match, path.relative_to(SRC).as_posix()) for path in MODULES for match in definitions.findall(path.read_text())
    )
    assert found == [("AUTOCAST_PRECISIONS", "training/config.py"), ("INFERENCE_PRECISIONS", "inference/precision.py")]
