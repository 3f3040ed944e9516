import pytest

import quadnas.resources as resources
from quadnas.latency.devices import SHIPPED_TABLES_DIR
from quadnas.resources import SPACES_DIR


def test_source_checkout_reads_the_folders_at_the_repository_root():
    root = resources._PACKAGE.parent
    assert SPACES_DIR == root / "search_spaces" and (SPACES_DIR / "quadranet-t.yaml").is_file()
    assert SHIPPED_TABLES_DIR == root / "latency_tables" and (SHIPPED_TABLES_DIR / "myriad-x.csv").is_file()


def test_an_installed_package_reads_its_own_copy(tmp_path, monkeypatch):
    package = tmp_path / "site-packages" / "quadnas"
    (package / "latency_tables").mkdir(parents=True)
    monkeypatch.setattr(resources, "_PACKAGE", package)
    assert resources.shipped_dir("latency_tables") == package / "latency_tables"
    assert resources.shipped_dir("search_spaces") == package.parent / "search_spaces"


def test_the_bundled_mnist_subset_ships_with_its_licence():
    folder = resources.shipped_dir("datasets")
    assert (folder / "mnist5k.npz").is_file() and "CC BY-SA 3.0" in (folder / "README.md").read_text()


def test_the_wheel_lists_every_subpackage_of_the_source_tree():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    root = resources._PACKAGE.parent
    listed = set(tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    in_tree = {".".join(p.parent.relative_to(root).parts) for p in (root / "quadnas").rglob("__init__.py")}
    assert in_tree <= listed, f"add {sorted(in_tree - listed)} to [tool.setuptools] packages in pyproject.toml"
