"""The command line reaches the library only through the subpackages' faces (their `__init__`).

`cli/*.py` may import the faces of `latency`, `latency.measure`, `latency.estimate`, `supernet`,
`_search`, `_export`, `nn` and `portable`, the top-level single modules and `quadnas.cli` itself, never a module
inside a subpackage. The lazy faces re-export each name from its one home.
"""

from __future__ import annotations

import ast
import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

import quadnas

PACKAGE = Path(quadnas.__file__).parent
FACES = (
    "quadnas.latency",
    "quadnas.latency.measure",
    "quadnas.latency.estimate",
    "quadnas.supernet",
    "quadnas._search",
    "quadnas._export",
    "quadnas.nn",
    "quadnas.portable",
)
SINGLE_MODULES = (
    "quadnas.space",
    "quadnas.data",
    "quadnas.errors",
    "quadnas.progress",
    "quadnas.accelerator",
    "quadnas._version",
    "quadnas.resources",
)
CLI_MAY_IMPORT = frozenset(FACES + SINGLE_MODULES)
LAZY_FACES = (
    "quadnas",
    "quadnas.latency",
    "quadnas.latency.measure",
    "quadnas.latency.estimate",
    "quadnas.supernet",
    "quadnas._search",
)


def is_module(dotted: str) -> bool:
    """Whether `dotted` names a module or package of the source tree (not an attribute)."""
    path = PACKAGE.parent.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def exported(package: str) -> set[str]:
    """The `__all__` of `package`'s `__init__`, read without importing it."""
    path = PACKAGE.parent.joinpath(*package.split(".")) / "__init__.py"
    if not path.is_file():
        return set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            return set(ast.literal_eval(node.value))
    return set()


def quadnas_imports(path: Path) -> list[tuple[int, str, tuple[str, ...]]]:
    """Every import of a quadnas module in `path`, at any depth (functions, TYPE_CHECKING blocks):
    (line, module, names taken from it). `from P import m` imports the module `P.m` where there is one
    and `P` does not export a name `m`."""
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, ()) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            names = []
            for alias in node.names:
                if is_module(f"{base}.{alias.name}") and alias.name not in exported(base):
                    found.append((node.lineno, f"{base}.{alias.name}", ()))
                else:
                    names.append(alias.name)
            if names:
                found.append((node.lineno, base, tuple(names)))
    return [(line, module, names) for line, module, names in found if module.split(".")[0] == "quadnas"]


def allowed_in_cli(module: str) -> bool:
    return module in CLI_MAY_IMPORT or module == "quadnas.cli" or module.startswith("quadnas.cli.")


def test_cli_imports_only_faces_and_single_modules():
    files = sorted((PACKAGE / "cli").glob("*.py"))
    assert len(files) > 10
    bad = [
        f"{path.relative_to(PACKAGE.parent)}:{line}: {module}"
        for path in files
        for line, module, _ in quadnas_imports(path)
        if not allowed_in_cli(module)
    ]
    assert not bad, "cli/ imports modules inside subpackages; import their faces instead:\n" + "\n".join(bad)


def test_cli_takes_from_a_face_only_what_it_offers():
    """A lazy face answers any name to mypy (its `__getattr__` returns Any), so check the names here."""
    missing = [
        f"{path.relative_to(PACKAGE.parent)}:{line}: {module}.{name}"
        for path in sorted((PACKAGE / "cli").glob("*.py"))
        for line, module, names in quadnas_imports(path)
        if module in FACES
        for name in names
        if name not in importlib.import_module(module).__all__
    ]
    assert not missing, "names not in the face's __all__:\n" + "\n".join(missing)


def top_level_definitions(module: str) -> set[str]:
    """The names `module` defines itself (classes, functions, assignments), not those it imports."""
    path = PACKAGE.parent.joinpath(*module.split(".")).with_suffix(".py")
    names: set[str] = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


def typed_homes(face: str) -> dict[str, str]:
    """name -> module of the face's `if TYPE_CHECKING:` imports (what mypy sees)."""
    path = PACKAGE.parent.joinpath(*face.split(".")) / "__init__.py"
    homes = {}
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for statement in node.body:
                if isinstance(statement, ast.ImportFrom) and statement.module:
                    homes |= {alias.name: statement.module for alias in statement.names}
    return homes


@pytest.mark.parametrize("face", LAZY_FACES)
def test_lazy_faces_re_export_each_name_from_its_one_home(face):
    module = importlib.import_module(face)
    lazy = {name: f"{face}.{home}" for name, home in module._HOMES.items()}
    assert module.__all__ == sorted(lazy), "__all__ lists the keys of _HOMES, sorted"
    assert typed_homes(face) == lazy, "the TYPE_CHECKING imports name the same homes as _HOMES"
    for name, home in lazy.items():
        # a submodule of that name would replace the lazy name once imported (the import system sets it)
        assert not is_module(f"{face}.{name}"), f"{face}.{name} is a module: it hides the name {name}"
        assert name in top_level_definitions(home), f"{home} does not define {name}: name its home"
        assert getattr(module, name) is getattr(importlib.import_module(home), name)
    with pytest.raises(AttributeError, match="no attribute 'nosuch'"):
        module.nosuch  # noqa: B018


# In a fresh interpreter: import every module of the package, then report each face name that is a
# module (a submodule that replaced a face's name), what the top-level faces are, and what calling
# `quadnas.export` and `quadnas.search` with a wrong argument raises.
EVERY_SUBMODULE_THEN_FACES = """
import importlib, inspect, json, pkgutil, sys
import quadnas
for info in pkgutil.walk_packages(quadnas.__path__, "quadnas."):
    if not info.name.endswith("__main__"):
        importlib.import_module(info.name)
faces = [name for name, module in sys.modules.items()
         if name.split(".")[0] == "quadnas" and hasattr(module, "__path__")]
hidden = [f"{face}.{name}" for face in faces for name in getattr(sys.modules[face], "__all__", [])
          if inspect.ismodule(getattr(sys.modules[face], name))]
calls = {}
for name, kwargs in (("export", {"out": "m.pt"}), ("search", {"trials": 0})):
    try:
        getattr(quadnas, name)(**kwargs)
    except Exception as error:
        calls[name] = type(error).__name__ + ": " + str(error)
print(json.dumps({
    "faces": len(faces),
    "hidden": hidden,
    "homes": {name: getattr(quadnas, name).__module__ for name in ("search", "export", "load")},
    "calls": calls,
}))
"""


def test_no_submodule_hides_a_face_name_once_every_module_is_imported(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", EVERY_SUBMODULE_THEN_FACES], capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.splitlines()[-1])
    assert found["faces"] >= 10 and found["hidden"] == []
    assert found["homes"] == {
        "search": "quadnas._search.run",
        "export": "quadnas._export.pipeline",
        "load": "quadnas._export.sidecar",
    }
    assert (
        found["calls"]["export"].startswith("QuadnasError: ") and "either a search result" in found["calls"]["export"]
    )
    assert found["calls"]["search"].startswith("QuadnasError: ")
