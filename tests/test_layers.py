"""The command line reaches the library only through the subpackages' faces (their `__init__`).

`cli/*.py` may import the faces of `latency`, `latency.measure`, `latency.estimate`, `supernet`,
`study`, `export`, `nn` and `portable`, the top-level single modules and `quadnas.cli` itself, never a module
inside a subpackage. The lazy faces re-export each name from its one home.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import quadnas

PACKAGE = Path(quadnas.__file__).parent
FACES = (
    "quadnas.latency",
    "quadnas.latency.measure",
    "quadnas.latency.estimate",
    "quadnas.supernet",
    "quadnas.study",
    "quadnas.export",
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
    "quadnas.latency",
    "quadnas.latency.measure",
    "quadnas.latency.estimate",
    "quadnas.supernet",
    "quadnas.study",
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
