"""The package's import graph: no cycles, backends below the public modules, no CPU/CUDA twins.

Every module of the installed `sparseforge` package is parsed (never imported), every import
statement found, including those inside functions (a call-time import closes a cycle just as
well, only later), except those under ``if TYPE_CHECKING:``. Relative imports are resolved,
and ``from . import x`` counts as an import of the submodule ``x`` when there is one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import sparseforge

PACKAGE = "sparseforge"
ROOT = Path(sparseforge.__file__).resolve().parent
# The public modules a backend must never import (they call the backends).
PUBLIC = ("omp", "patches", "ksvd", "coder", "restore", "cli")


def module_files(root: Path, package: str) -> dict[str, Path]:
    """Module name -> source file, for every .py file of the package at `root`."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join([package, *parts])] = path
    return found


def extension_modules(root: Path, package: str) -> set[str]:
    """Names of the compiled submodules (``_core``, ``_cuda``): leaves of the graph."""
    found = set()
    for path in root.rglob("*"):
        if path.suffix in (".so", ".pyd"):
            parts = list(path.relative_to(root).parts)
            parts[-1] = parts[-1].split(".")[0]
            found.add(".".join([package, *parts]))
    return found


MODULES = module_files(ROOT, PACKAGE)
# Every directory of the package (an editable install keeps the compiled modules apart).
EXTENSIONS = set().union(*(extension_modules(Path(p), PACKAGE) for p in sparseforge.__path__))


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST):
    """Every Import / ImportFrom node, skipping the bodies of ``if TYPE_CHECKING:``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def _target(name: str, modules: dict[str, Path]) -> str | None:
    """The package module `name` refers to: itself, or its nearest existing parent."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def imports_of(module: str, modules: dict[str, Path] = MODULES, package: str = PACKAGE,
               extensions: set[str] = EXTENSIONS) -> set[str]:
    """The package's source modules that `module` imports (anywhere in its code).

    ``from pkg import x, y`` imports the submodules x and y when they are modules (source or
    compiled), and `pkg` itself only for names that are not (attributes of its
    ``__init__``): every module depends on its parent packages anyway, so an edge to them
    for a submodule import would be a false cycle."""
    path = modules[module]
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    # The package relative imports start from: the module itself for an __init__.py.
    here = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in _imports(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            if node.level:
                base = here.split(".")
                base = base[:len(base) - (node.level - 1)]
                base_name = ".".join(base + ([node.module] if node.module else []))
            else:
                base_name = node.module or ""
            subs = [f"{base_name}.{alias.name}" for alias in node.names]
            names = [sub for sub in subs if sub in modules]
            if any(sub not in modules and sub not in extensions for sub in subs):
                names.append(base_name)
        for name in names:
            if name == package or name.startswith(package + "."):
                target = _target(name, modules)
                if target is not None and target != module:
                    found.add(target)
    return found


GRAPH = {module: imports_of(module) for module in MODULES}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component with more than one module (or a self
    loop), found with Tarjan's algorithm."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph.get(v, ()):
                components.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return components


def _explain(component: list[str]) -> str:
    members = set(component)
    edges = [f"{a} -> {b}" for a in component for b in sorted(GRAPH[a]) if b in members]
    return "; ".join(edges)


def test_the_walk_sees_the_package():
    """The walk is not vacuous: it finds the modules and the imports we know of."""
    for name in ("sparseforge", "sparseforge.omp", "sparseforge.patches",
                 "sparseforge.backends", "sparseforge.backends.cpu",
                 "sparseforge.backends.cuda", "sparseforge._arrays", "sparseforge.ksvd"):
        assert name in MODULES, name
    assert "sparseforge.omp" in GRAPH["sparseforge"]
    assert "sparseforge._core" not in MODULES          # extension modules have no source
    assert "sparseforge._core" in EXTENSIONS
    assert any(m.startswith("sparseforge.backends") for m in GRAPH["sparseforge.omp"])


def test_the_walk_resolves_relative_and_function_level_imports(tmp_path):
    """The resolver itself, on a tiny fake package: relative levels, `from . import x` of a
    submodule, imports inside functions, and TYPE_CHECKING blocks skipped."""
    root = tmp_path / "fakepkg"
    (root / "sub").mkdir(parents=True)
    for name in ("__init__.py", "a.py", "b.py", "c.py", "d.py", "sub/__init__.py"):
        (root / name).write_text("")
    (root / "sub" / "inner.py").write_text(
        "from __future__ import annotations\n"
        "from typing import TYPE_CHECKING\n"
        "from . import helper\n"            # not a submodule: the package itself
        "from .. import a, _ext\n"          # submodules (one compiled) of the parent
        "from ..b import thing\n"
        "if TYPE_CHECKING:\n"
        "    from .. import c\n"            # skipped
        "else:\n"
        "    import os\n"
        "def f():\n"
        "    import fakepkg.d\n")           # inside a function: counts
    modules = module_files(root, "fakepkg")
    assert set(modules) == {"fakepkg", "fakepkg.a", "fakepkg.b", "fakepkg.c", "fakepkg.d",
                            "fakepkg.sub", "fakepkg.sub.inner"}
    (root / "_ext.cpython-312-x86_64-linux-gnu.so").write_bytes(b"")
    extensions = extension_modules(root, "fakepkg")
    assert extensions == {"fakepkg._ext"}
    assert imports_of("fakepkg.sub.inner", modules, "fakepkg", extensions) == {
        "fakepkg.sub", "fakepkg.a", "fakepkg.b", "fakepkg.d"}
    (root / "sub" / "__init__.py").write_text("from .inner import f\nfrom .. import x\n")
    assert imports_of("fakepkg.sub", modules, "fakepkg", extensions) == {
        "fakepkg.sub.inner", "fakepkg"}


def test_no_import_cycles():
    cycles = _cycles(GRAPH)
    assert not cycles, "import cycles: " + " | ".join(_explain(c) for c in cycles)


def test_the_cycle_finder_finds_cycles():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"a"}}) == [["a"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


@pytest.mark.parametrize("module", sorted(m for m in MODULES
                                          if m.startswith("sparseforge.backends")))
def test_backends_never_import_public_modules(module):
    public = {f"{PACKAGE}.{name}" for name in PUBLIC}
    bad = sorted(t for t in GRAPH[module]
                 if t in public or any(t.startswith(p + ".") for p in public))
    assert not bad, f"{module} imports public module(s) {bad}"


def test_backends_reach_no_public_module_transitively():
    """Nor through a helper: nothing a backend imports imports a public module either."""
    public = {f"{PACKAGE}.{name}" for name in PUBLIC}
    for start in (m for m in MODULES if m.startswith("sparseforge.backends")):
        seen, todo = set(), [start]
        while todo:
            m = todo.pop()
            for t in GRAPH[m]:
                if t not in seen:
                    seen.add(t)
                    todo.append(t)
        bad = sorted(t for t in seen if t in public or any(t.startswith(p + ".")
                                                           for p in public))
        assert not bad, f"{start} reaches public module(s) {bad}"


def test_no_cpu_cuda_twin_modules():
    for gone in ("_cuda_dispatch", "_cuda_ksvd"):
        assert f"sparseforge.{gone}" not in MODULES
        assert not (ROOT / f"{gone}.py").exists()
        with pytest.raises(ImportError):
            __import__(f"sparseforge.{gone}")


def test_backends_export_the_same_names():
    from sparseforge.backends import cpu, cuda

    names = ("omp_batch", "extract_patches", "aggregate_patches", "gram", "ksvd_sweep")
    for name in names:
        assert callable(getattr(cpu, name)), ("cpu", name)
        assert callable(getattr(cuda, name)), ("cuda", name)
