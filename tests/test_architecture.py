"""The layers of docs/ARCHITECTURE.md, checked on the source: no import points upward, no import circle,
every exception class lives in mvc/errors.py, and the page and the tree name the same modules."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "mvc"
ARCHITECTURE = ROOT / "docs" / "ARCHITECTURE.md"

# Bottom to top; a module may import its own layer and those below it, never one above.
LAYERS = [
    ("mvc.errors", "mvc.progress"),
    ("mvc.storage",),
    ("mvc.objects",),
    ("mvc.format",),
    ("mvc.git",),
    ("mvc.repo",),
    ("mvc.api",),
    ("mvc.cli",),
    ("mvc", "mvc.__main__"),  # the package itself: lazy names for the API, and `python -m mvc`
]
LONG_MODULE = 500  # lines; a longer module needs its reason in ARCHITECTURE.md


def modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PKG.rglob("*.py")):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = path
    return out


def layer(module: str) -> int:
    best = None
    for i, prefixes in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and (best is None or len(p) > best[1]):
                best = (i, len(p))
    assert best is not None, f"{module} belongs to no layer: add it to LAYERS and docs/ARCHITECTURE.md"
    return best[0]


def imports(path: Path, known: set[str]) -> set[str]:
    """Every mvc module path imports, at module level or deferred inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name:
                found.add(name)
    return found


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {m: imports(p, set(mods)) - {m} for m, p in mods.items()}


def test_no_import_points_upward():
    upward = [
        f"{m} (layer {layer(m)}) imports {t} (layer {layer(t)})"
        for m, targets in graph().items()
        for t in sorted(targets)
        if layer(t) > layer(m) and t != "mvc"
    ]
    assert not upward, "\n".join(upward)


def test_no_import_circle():
    g = graph()
    for m in g:  # the package's own __init__ is imported by every submodule: not an edge of the graph
        g[m].discard("mvc")
    state: dict[str, int] = {}
    stack: list[str] = []
    circles: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for t in sorted(g[m]):
            if state.get(t) == 1:
                circles.append(" -> ".join([*stack[stack.index(t) :], t]))
            elif t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(g):
        if m not in state:
            visit(m)
    assert not circles, "\n".join(circles)


def test_every_exception_class_is_in_errors_py():
    stray = []
    for name, path in modules().items():
        if name == "mvc.errors":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                bases = [ast.unparse(b) for b in node.bases]
                if any(b.endswith(("Error", "Exception", "Missing", "Corrupt")) for b in bases):
                    stray.append(f"{path.relative_to(ROOT)}: class {node.name}({', '.join(bases)})")
    assert not stray, "exception classes belong in mvc/errors.py:\n" + "\n".join(stray)


def _page() -> str:
    return ARCHITECTURE.read_text()


def test_architecture_page_names_every_module_and_only_real_ones():
    page = _page()
    tree = {str(p.relative_to(ROOT)) for p in PKG.rglob("*.py")}
    named = set(re.findall(r"`(mvc/[\w/]+\.py)`", page))
    missing = sorted(t for t in tree - named if not t.endswith("__init__.py") or t.count("/") == 1)
    ghosts = sorted(named - tree)
    assert not missing, f"docs/ARCHITECTURE.md does not name {missing}"
    assert not ghosts, f"docs/ARCHITECTURE.md names modules that do not exist: {ghosts}"


def test_long_modules_have_a_reason():
    page = _page()
    reasons = page.split("## Long modules", 1)[1] if "## Long modules" in page else ""
    long = [
        str(p.relative_to(ROOT))
        for p in PKG.rglob("*.py")
        if len(p.read_text().splitlines()) > LONG_MODULE and f"`{p.relative_to(ROOT)}`" not in reasons
    ]
    assert not long, f"over {LONG_MODULE} lines with no reason under '## Long modules' in ARCHITECTURE.md: {long}"


def test_the_checker_catches_an_upward_import_and_a_circle(tmp_path, monkeypatch):
    """The checks above must fail on a bad tree, not pass on everything."""
    pkg = tmp_path / "mvc"
    (pkg / "storage").mkdir(parents=True)
    (pkg / "api").mkdir()
    for d in (pkg, pkg / "storage", pkg / "api"):
        (d / "__init__.py").write_text("")
    (pkg / "storage" / "a.py").write_text("from mvc.api import b\n")
    (pkg / "api" / "b.py").write_text("def f():\n    from mvc.storage import a\n")
    monkeypatch.setattr(__import__(__name__), "ROOT", tmp_path)
    monkeypatch.setattr(__import__(__name__), "PKG", pkg)
    g = graph()
    assert "mvc.api.b" in g["mvc.storage.a"] and "mvc.storage.a" in g["mvc.api.b"]
    try:
        test_no_import_points_upward()
    except AssertionError as e:
        assert "mvc.storage.a (layer 1) imports mvc.api.b (layer 6)" in str(e)
    else:
        raise AssertionError("an upward import was not caught")
    try:
        test_no_import_circle()
    except AssertionError as e:
        assert "mvc.api.b -> mvc.storage.a -> mvc.api.b" in str(e) or "mvc.storage.a -> mvc.api.b" in str(e)
    else:
        raise AssertionError("a circle was not caught")
