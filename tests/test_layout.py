"""The layout DESIGN.md draws, checked on the source (ast, nothing imported): no import circle among
the modules of data_io, models, spaces and search (lazy imports inside functions count), no private
name (one leading underscore) imported from another module of theirs, the package arrows
data_io <- models <- spaces <- search with Ray imported by search alone, and no module of search over
300 lines nor function over 60."""

from __future__ import annotations

import ast
import functools
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("data_io", "models", "spaces", "search")
MAY_IMPORT = {"data_io": set(), "models": {"data_io"}, "spaces": {"data_io", "models"},
              "search": {"data_io", "models", "spaces"}}  # DESIGN.md: "An arrow means imports"
RAY_ONLY_IN = {"search"}


@dataclass(frozen=True)
class Import:
    source: str  # the importing module
    target: str  # the imported module, resolved (absolute; a package stands for its __init__)
    names: tuple[str, ...]  # the names a `from ... import` takes; () for `import target`
    where: str  # path:line, for the messages
    origin: str = ""  # the module of a `from origin import names`, resolved; "" for `import target`


def modules(root: Path, packages=PACKAGES) -> dict[str, Path]:
    """Dotted module name -> file, for every .py under the packages (a package is its __init__)."""
    found = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(root: Path, mods: dict[str, Path]) -> list[Import]:
    """Every import statement of the modules, at any depth (inside functions, try, if), resolved."""
    out = []
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            where = f"{path.relative_to(root)}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.Import):
                out += [Import(name, alias.name, (), where) for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # from . import x / from ..a import y, relative to the module's package
                    base = package.split(".")
                    base = base[:len(base) - (node.level - 1)] if node.level - 1 <= len(base) else []
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                names = tuple(alias.name for alias in node.names)
                submodules = [n for n in names if f"{target}.{n}" in mods]  # `from pkg import submodule`
                out += [Import(name, f"{target}.{n}", (n,), where, target) for n in submodules]
                rest = tuple(n for n in names if n not in submodules)
                if rest:
                    out.append(Import(name, target, rest, where, target))
    return out


def owner(target: str, mods: dict[str, Path]) -> str | None:
    """The project module an import runs: the longest known prefix of the dotted name."""
    while target and target not in mods:
        target = target.rpartition(".")[0]
    return target or None


def graph(found: list[Import], mods: dict[str, Path]) -> dict[str, dict[str, str]]:
    """source -> {target module: where the first such import is}; imports of itself left out."""
    edges: dict[str, dict[str, str]] = {m: {} for m in mods}
    for imp in found:
        target = owner(imp.target, mods)
        if target is not None and target != imp.source:
            edges[imp.source].setdefault(target, imp.where)
    return edges


def circles(edges: dict[str, dict[str, str]]) -> list[list[str]]:
    """One closed path per import circle, from its smallest module back to it: [a, b, ..., a]."""
    return sorted((_loop(comp, edges) for comp in components(edges)), key=lambda path: path[0])


def components(edges: dict[str, dict[str, str]]) -> list[set[str]]:
    """The strongly connected components of more than one module (Tarjan's, iterative): each is
    one import circle, or several sharing modules."""
    index, low, on, stack, comps, counter = {}, {}, set(), [], [], 0
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = counter = counter + 1
        stack.append(start)
        on.add(start)
        while work:
            v, todo = work[-1]
            w = next(todo, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = counter = counter + 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(edges.get(w, ())))))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = set()
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.add(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    comps.append(comp)
    return comps


def _loop(comp: set[str], edges: dict[str, dict[str, str]]) -> list[str]:
    """A shortest closed path inside one component, from its smallest module back to it (BFS)."""
    first = min(comp)
    parent, frontier = {first: None}, [first]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(edges[v]):
                if w == first:
                    path = [v]
                    while parent[path[-1]] is not None:
                        path.append(parent[path[-1]])
                    return [*reversed(path), first]
                if w in comp and w not in parent:
                    parent[w] = v
                    nxt.append(w)
        frontier = nxt
    raise AssertionError(f"no cycle through {first} in its component")  # a component always has one


def describe(path: list[str], edges: dict[str, dict[str, str]]) -> str:
    """'a -> b (a.py:3) -> a (b.py:9)': the import circle and the line of each import in it."""
    return path[0] + "".join(f" -> {b} ({edges[a][b]})" for a, b in zip(path, path[1:]))


def private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def private_imports(found: list[Import], mods: dict[str, Path]) -> list[Import]:
    """`from X import _name` where X is another project module (dunder names such as __version__ are fine)."""
    return [imp for imp in found
            if imp.origin and owner(imp.origin, mods) not in (None, imp.source)
            and any(map(private, imp.names))]


def arrow_violations(found: list[Import], package: str) -> list[str]:
    """The imports of `package` against MAY_IMPORT and RAY_ONLY_IN, one line each."""
    mine = [imp for imp in found if imp.source.split(".")[0] == package]
    wrong = [f"{imp.source} imports {imp.target} ({imp.where})" for imp in mine
             if imp.target.split(".")[0] in set(PACKAGES) - {package} - MAY_IMPORT[package]]
    return wrong + [f"{imp.source} imports {imp.target} ({imp.where}): only {', '.join(sorted(RAY_ONLY_IN))} imports Ray"
                    for imp in mine if imp.target.split(".")[0] == "ray" and package not in RAY_ONLY_IN]


@functools.cache
def _project() -> tuple[dict[str, Path], list[Import], dict[str, dict[str, str]]]:
    mods = modules(ROOT)
    found = imports(ROOT, mods)
    return mods, found, graph(found, mods)


# --- the project ------------------------------------------------------------------------------

def test_the_four_packages_are_found():
    mods, _, _ = _project()
    assert set(PACKAGES) <= set(mods)
    assert {"search.outcomes", "search.ranking", "search.summary", "search.advice"} <= set(mods)


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_circle(package):
    _, _, edges = _project()
    found = [comp for comp in components(edges) if any(m.split(".")[0] == package for m in comp)]
    assert not found, "import circle(s):\n" + "\n".join(
        f"{describe(_loop(comp, edges), edges)}\n  (modules in circles with it: {', '.join(sorted(comp))})"
        for comp in found)


@pytest.mark.parametrize("package", PACKAGES)
def test_no_private_name_across_modules(package):
    mods, found, _ = _project()
    bad = [imp for imp in private_imports(found, mods) if imp.source.split(".")[0] == package]
    assert not bad, "private names imported from another module:\n" + "\n".join(
        f"{imp.source} imports {', '.join(filter(private, imp.names))} from {imp.origin} ({imp.where})"
        for imp in bad)


@pytest.mark.parametrize("package", PACKAGES)
def test_package_arrows(package):
    _, found, _ = _project()
    wrong = arrow_violations(found, package)
    assert not wrong, f"{package} breaks DESIGN.md's arrows:\n" + "\n".join(wrong)


# --- the checker itself, on a package made for it --------------------------------------------

def _tmp_package(root: Path, files: dict[str, str]) -> tuple[dict[str, Path], list[Import], dict]:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    mods = modules(root, ("pkg",))
    found = imports(root, mods)
    return mods, found, graph(found, mods)


def test_a_lazy_import_closes_a_circle(tmp_path):
    _, _, edges = _tmp_package(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a.py": "from pkg.b import helper\n",
        "pkg/b.py": "def helper():\n    from . import a  # late, inside a function\n    return a\n",
        "pkg/c.py": "import pkg.a\n",  # points into the circle, is not part of it
    })
    assert circles(edges) == [["pkg.a", "pkg.b", "pkg.a"]]
    assert describe(circles(edges)[0], edges) == "pkg.a -> pkg.b (pkg/a.py:1) -> pkg.a (pkg/b.py:2)"


def test_relative_imports_resolve_and_a_longer_circle_is_named_whole(tmp_path):
    _, _, edges = _tmp_package(tmp_path, {
        "pkg/__init__.py": "from .sub import x\n",
        "pkg/sub/__init__.py": "from .deep import x\n",
        "pkg/sub/deep.py": "x = 1\ndef f():\n    if True:\n        from ..top import y\n",
        "pkg/top.py": "try:\n    import pkg.sub.deep as d\nexcept ImportError:\n    pass\ndef g():\n    from pkg import sub\n",
    })
    assert edges["pkg"] == {"pkg.sub": "pkg/__init__.py:1"}
    assert edges["pkg.sub"] == {"pkg.sub.deep": "pkg/sub/__init__.py:1"}
    assert set(edges["pkg.top"]) == {"pkg.sub.deep", "pkg.sub"}
    assert circles(edges) == [["pkg.sub", "pkg.sub.deep", "pkg.top", "pkg.sub"]]
    assert components(edges) == [{"pkg.sub", "pkg.sub.deep", "pkg.top"}]


def test_no_circle_when_the_arrows_go_one_way(tmp_path):
    _, _, edges = _tmp_package(tmp_path, {
        "pkg/__init__.py": "from pkg.a import f\n",
        "pkg/a.py": "from pkg import b\ndef f():\n    import pkg.b.c\n",
        "pkg/b/__init__.py": "",
        "pkg/b/c.py": "import os\nimport optuna\n",
    })
    assert circles(edges) == []


def test_private_names_from_another_module_are_found(tmp_path):
    mods, found, _ = _tmp_package(tmp_path, {  # fine: dunders, public names of a private module,
        "pkg/__init__.py": "__version__ = '1'\nfrom . import _b\n",  # a package's own submodule,
        "pkg/a.py": "from pkg import __version__\nfrom ._b import Public\nfrom optuna.samplers._tpe import _truncnorm\n",
        "pkg/_b.py": "class Public: ...\n_hidden = 1\n",  # and another library's private names
        "pkg/c.py": "def f():\n    from .a import Public\n    from ._b import Public, _hidden\n    from pkg import _b\n",
    })
    bad = private_imports(found, mods)
    assert [(imp.source, imp.origin, imp.where) for imp in bad] == [("pkg.c", "pkg._b", "pkg/c.py:3"),
                                                                    ("pkg.c", "pkg", "pkg/c.py:4")]


def test_arrows_against_the_design_lazy_imports_included(tmp_path):
    files = {"data_io/__init__.py": "", "data_io/a.py": "def f():\n    from models import fit\n",
             "models/__init__.py": "from data_io import a\n", "models/m.py": "import ray.tune\nimport optuna\n",
             "spaces/__init__.py": "from models import m\nfrom data_io.a import f\n",
             "search/__init__.py": "import ray\nfrom spaces import x\n"}
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    mods = modules(tmp_path)
    found = imports(tmp_path, mods)
    assert {p: arrow_violations(found, p) for p in PACKAGES} == {
        "data_io": ["data_io.a imports models (data_io/a.py:2)"],
        "models": ["models.m imports ray.tune (models/m.py:1): only search imports Ray"],
        "spaces": [], "search": []}


MAX_MODULE_LINES, MAX_FUNCTION_LINES = 300, 60  # issue 44: search/ holds no grab-bag module or function


def test_search_has_no_grab_bag_module_or_function():
    too_big = []
    for name, path in modules(ROOT, ("search",)).items():
        text = path.read_text(encoding="utf-8")
        if text.count("\n") > MAX_MODULE_LINES:
            too_big.append(f"{name}: {text.count(chr(10))} lines")
        too_big += [f"{name}.{node.name}: {node.end_lineno - node.lineno + 1} lines"
                    for node in ast.walk(ast.parse(text))
                    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                    and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert not too_big, too_big
