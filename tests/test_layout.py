"""The package's layout is its architecture: stage folders, imports that only point down, no circles."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "selfinstruct"
STAGES = ("generation", "data", "training", "evaluation")
# what each stage may import besides itself; the shared modules (teachers, models, plots) are open to all
ALLOWED = {
    "data": set(),
    "generation": {"data"},
    "training": {"data"},
    "evaluation": {"data", "generation"},  # generation.prompts loads the judge's template
}
SHARED = {"teachers", "models", "plots"}


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(pkg: Path = PKG) -> dict[str, set[str]]:
    """Module -> the selfinstruct modules it imports (at any depth of the file, lazy imports included)."""
    graph = {}
    for path in pkg.rglob("*.py"):
        mod = _module(path)
        here = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = here[: len(here) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                if not target.startswith("selfinstruct"):
                    continue
                for alias in node.names:  # `from . import prompts` names a module
                    sub = f"{target}.{alias.name}"
                    deps.add(sub if (PKG.parent / (sub.replace(".", "/") + ".py")).exists() else target)
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name.startswith("selfinstruct")}
        graph[mod] = deps - {mod}
    return graph


def stage_of(mod: str) -> str:
    parts = mod.split(".")
    return parts[1] if len(parts) > 1 else ""


def layering_violations(graph) -> list[str]:
    bad = []
    for mod, deps in graph.items():
        stage = stage_of(mod)
        if stage not in STAGES:
            continue
        for dep in deps:
            other = stage_of(dep)
            if other in STAGES and other != stage and other not in ALLOWED[stage]:
                bad.append(f"{mod} -> {dep}")
            if other in ("cli", "demo"):
                bad.append(f"{mod} -> {dep}")
    return bad


def cycles(graph) -> list[list[str]]:
    """Module-level import circles (packages' __init__ files count as modules)."""
    found, state = [], {}

    def visit(node, path):
        state[node] = 1
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                found.append(path[path.index(dep):] + [dep])
            elif dep not in state:
                visit(dep, path + [dep])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return found


def test_each_stage_is_a_folder_that_says_what_it_does():
    for stage in STAGES:
        init = PKG / stage / "__init__.py"
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc and "Entry point" in doc, stage
        assert len(init.read_text().splitlines()) < 20, f"{stage}/__init__.py: a few lines, not re-exports"
    flat = sorted(p.name for p in PKG.glob("*.py"))
    assert flat == ["__init__.py", "demo.py", "models.py", "plots.py"]


def test_no_stage_imports_a_stage_above_it():
    graph = import_graph()
    assert "selfinstruct.data.records" in graph["selfinstruct.generation.journal"] or \
        any(d.startswith("selfinstruct.data") for d in graph["selfinstruct.generation.journal"])
    assert layering_violations(graph) == []


def test_no_import_circles():
    assert cycles(import_graph()) == []


def test_the_checks_can_fail(tmp_path):
    """A data module that imports training, and two modules that import each other, are both caught."""
    pkg = tmp_path / "selfinstruct"
    for d in ("data", "training"):
        (pkg / d).mkdir(parents=True)
        (pkg / d / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "data" / "a.py").write_text("from ..training.b import x\n")
    (pkg / "training" / "b.py").write_text("from ..data.a import y\n")
    global ROOT
    old = ROOT
    ROOT = tmp_path
    try:
        graph = import_graph(pkg)
    finally:
        ROOT = old
    assert layering_violations(graph) == ["selfinstruct.data.a -> selfinstruct.training.b"]
    assert cycles(graph)
