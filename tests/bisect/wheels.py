"""Wheels built in a test: a minimal wheel writer (PEP 427), the toy package `toyxent` at any
version, and a repacked copy of an installed distribution (numpy, ml_dtypes, mpmath), so that a
folder of wheels holds everything a bisect environment needs, and bisect runs offline."""

from __future__ import annotations

import base64
import hashlib
import os
import zipfile
from importlib import metadata
from pathlib import Path

CHANGELOG = "https://example.invalid/toyxent/changelog"

TOYXENT = '''"""toyxent {version}: softmax cross-entropy with integer labels, in float64."""
import numpy as np
{extra_import}
BUG = {bug!r}  # the relative error this release adds to the loss


def cross_entropy(logits, labels):
    x = np.asarray(logits, dtype=np.float64)
    rows = np.arange(x.shape[0])
    m = x.max(axis=1)
    lse = np.log(np.exp(x - m[:, None]).sum(axis=1)) + m
    loss = (lse - x[rows, labels]) * (1.0 + BUG)
    grad = np.exp(x - lse[:, None])
    grad[rows, labels] -= 1.0
    return loss, grad
'''


def _digest(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def write_wheel(folder: Path, name: str, version: str, files: dict[str, bytes | Path], dist_info: dict[str, bytes],
                tag: str = "py3-none-any") -> Path:
    """A wheel of `files` (archive path -> bytes, or a file to copy) and `dist_info` (METADATA, WHEEL
    and any other .dist-info file, RECORD excluded: it is written here)."""
    stem = f"{name.replace('-', '_')}-{version}"
    path = Path(folder) / f"{stem}-{tag}.whl"
    info = f"{stem}.dist-info"
    record = []
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        for arc, content in [*files.items(), *((f"{info}/{k}", v) for k, v in dist_info.items())]:
            data = content.read_bytes() if isinstance(content, Path) else content
            z.writestr(arc, data)
            record.append(f"{arc},{_digest(data)},{len(data)}")
        record.append(f"{info}/RECORD,,")
        z.writestr(f"{info}/RECORD", "\n".join(record) + "\n")
    return path


def toy_wheel(folder: Path, version: str, bug: float = 0.0, requires: tuple[str, ...] = ("numpy",),
              broken_import: bool = False, mtime: float | None = None) -> Path:
    """toyxent at `version`: its loss off by the relative error `bug`; `requires` its dependencies
    (a missing one makes the install fail); `broken_import`: importing it raises."""
    source = TOYXENT.format(version=version, bug=bug,
                            extra_import="import toyxent_missing_helper" if broken_import else "")
    meta = "\n".join(["Metadata-Version: 2.1", "Name: toyxent", f"Version: {version}",
                      *[f"Requires-Dist: {r}" for r in requires],
                      f"Project-URL: Changelog, {CHANGELOG}", "Project-URL: Source, https://github.com/example/toyxent",
                      "", ""])
    wheel = "Wheel-Version: 1.0\nGenerator: xentcheck-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    path = write_wheel(folder, "toyxent", version, {"toyxent/__init__.py": source.encode()},
                       {"METADATA": meta.encode(), "WHEEL": wheel.encode(), "top_level.txt": b"toyxent\n"})
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def plain_wheel(folder: Path, name: str, version: str) -> Path:
    """A package `name` at `version` that holds nothing but its version."""
    meta = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\n"
    wheel = "Wheel-Version: 1.0\nGenerator: xentcheck-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    return write_wheel(folder, name, version, {f"{name}/__init__.py": f"VERSION = {version!r}\n".encode()},
                       {"METADATA": meta.encode(), "WHEEL": wheel.encode()})


def _filename_tag(tags: list[str]) -> str:
    """The compressed tag set of a wheel's file name (py.py-abi-plat.plat)."""
    parts = [t.split("-") for t in tags]
    return "-".join(".".join(dict.fromkeys(p[i] for p in parts)) for i in range(3))


def repack(dist_name: str, folder: Path) -> Path:
    """The installed distribution `dist_name` as a wheel in `folder` (its RECORD's files, bytecode
    and scripts left out)."""
    dist = metadata.distribution(dist_name)
    info_dir = next(f.parts[0] for f in dist.files or [] if f.parts[0].endswith(".dist-info"))
    files: dict[str, bytes | Path] = {}
    dist_info: dict[str, bytes | Path] = {}
    for f in dist.files or []:
        if f.parts[0] == ".." or "__pycache__" in f.parts or f.suffix == ".pyc":
            continue
        source = Path(str(dist.locate_file(f)))
        if not source.is_file():
            continue
        if f.parts[0] == info_dir:
            if f.name not in ("RECORD", "INSTALLER", "REQUESTED", "direct_url.json"):
                dist_info["/".join(f.parts[1:])] = source
        else:
            files["/".join(f.parts)] = source
    tags = [line.split(":", 1)[1].strip() for line in (dist.read_text("WHEEL") or "").splitlines()
            if line.startswith("Tag:")]
    name, version = info_dir[: -len(".dist-info")].rsplit("-", 1)
    return write_wheel(folder, name, version, files, dist_info, _filename_tag(tags))
