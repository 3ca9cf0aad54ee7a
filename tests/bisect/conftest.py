"""Folders of wheels for the offline bisect tests: numpy, ml_dtypes and mpmath repacked from this
environment (what every bisect environment needs), beside the toy package's versions."""

import os
import shutil
from pathlib import Path

import pytest

from tests.bisect import wheels

DAY = 86400.0
T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z: toyxent's first release, one more each day


@pytest.fixture(scope="module")
def deps(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("deps")
    for name in ("numpy", "ml_dtypes", "mpmath"):
        try:
            wheels.repack(name, folder)
        except Exception as exc:  # an editable or unusual install: nothing to repack from
            pytest.skip(f"cannot repack the installed {name} as a wheel: {type(exc).__name__}: {exc}")
    return folder


@pytest.fixture(scope="module")
def make_wheelhouse(deps, tmp_path_factory):
    """make_wheelhouse([(version, {toy_wheel options}), ...]): a folder with those toyxent versions
    (uploaded a day apart) and the dependencies (hard links where the file system allows)."""
    def make(releases):
        folder = tmp_path_factory.mktemp("wheelhouse")
        for dep in deps.iterdir():
            try:
                os.link(dep, folder / dep.name)
            except OSError:
                shutil.copyfile(dep, folder / dep.name)
        for i, (version, options) in enumerate(releases):
            wheels.toy_wheel(folder, version, mtime=T0 + i * DAY, **options)
        return folder
    return make


@pytest.fixture(scope="module")
def cache_env(tmp_path_factory) -> dict:
    """A cache of this module's own: bisect's environments and uv's downloads."""
    root = tmp_path_factory.mktemp("cache")
    return {"XDG_CACHE_HOME": str(root), "UV_CACHE_DIR": str(root / "uv")}
