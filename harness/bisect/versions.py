"""The releases of a package on the configured indexes, and which of them bisect may try.

An index is read through its simple API: PEP 691 JSON where the server offers it (PyPI does,
with each file's upload time, PEP 700), else the PEP 503 HTML page of links (a `file://` index
is a folder of such pages). A --find-links folder is listed, each file's time being its
modification time; a find-links URL is a page of links. A candidate is a release with a wheel
this platform and Python can install (its tags, its Requires-Python), not a pre-release and not
yanked unless asked for.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timezone
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING

from xentcheck.bisect.indexes import IndexConfig

if TYPE_CHECKING:
    from packaging.tags import Tag
    from packaging.version import Version

ACCEPT = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.1"
TIMEOUT_S = 60.0


@dataclass
class FileInfo:
    filename: str
    url: str
    yanked: bool = False
    requires_python: str | None = None
    upload_time: str | None = None  # ISO 8601, UTC


@dataclass
class Release:
    version: str
    files: list[FileInfo] = field(default_factory=list)

    @property
    def upload_time(self) -> str | None:
        times = [f.upload_time for f in self.files if f.upload_time]
        return min(times) if times else None

    @property
    def yanked(self) -> bool:
        return bool(self.files) and all(f.yanked for f in self.files)


class IndexReadError(ValueError):
    """An index that cannot be read; one line naming it."""


def canonical(name: str) -> str:
    from packaging.utils import canonicalize_name
    return str(canonicalize_name(name))


def parse_version(text: str) -> Version:
    from packaging.version import InvalidVersion, Version
    try:
        return Version(text)
    except InvalidVersion:
        raise ValueError(f"{text!r} is not a version (PEP 440)") from None


# --- reading indexes ----------------------------------------------------------------------------

class _Links(HTMLParser):
    """The <a> elements of a PEP 503 page: href and the data-* attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[dict[str, str | None]] = []

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self.links.append(dict(attrs))


def _fetch(url: str) -> tuple[str, bytes] | None:
    """(content type, body) of an index page; None when it does not exist (404, no such file)."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme == "file":
        path = Path(urllib.request.url2pathname(parsed.path))
        if path.is_dir():
            path = path / "index.html"
        try:
            return "text/html", path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise IndexReadError(f"cannot read {url}: {exc.strerror or exc}") from None
    request = urllib.request.Request(url, headers={"Accept": ACCEPT, "User-Agent": "xentcheck-bisect"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            return response.headers.get("Content-Type", ""), response.read()
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise IndexReadError(f"cannot read {url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise IndexReadError(f"cannot read {url}: {reason}") from None


def _files_of_page(url: str, content_type: str, body: bytes) -> list[FileInfo]:
    if "json" in content_type:
        data = json.loads(body)
        return [FileInfo(f["filename"], urllib.parse.urljoin(url, f["url"]), bool(f.get("yanked")),
                         f.get("requires-python"), _iso(f.get("upload-time"))) for f in data.get("files", [])]
    parser = _Links()
    parser.feed(body.decode("utf-8", "replace"))
    out = []
    for a in parser.links:
        href = a.get("href")
        if not href:
            continue
        link = urllib.parse.urljoin(url, href)
        name = urllib.parse.unquote(urllib.parse.urlparse(link).path.rsplit("/", 1)[-1])
        out.append(FileInfo(name, link, "data-yanked" in a, a.get("data-requires-python")))
    return out


def _iso(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        return None


def _folder_files(folder: str) -> list[FileInfo]:
    out = []
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if entry.is_file():
            mtime = datetime.fromtimestamp(entry.stat().st_mtime, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
            out.append(FileInfo(entry.name, Path(entry.path).resolve().as_uri(), upload_time=mtime))
    return out


def _name_version(filename: str) -> tuple[str, str] | None:
    """(canonical project name, version) of a wheel or sdist file name; None for anything else."""
    from packaging.utils import InvalidSdistFilename, InvalidWheelFilename, parse_sdist_filename, parse_wheel_filename
    try:
        if filename.endswith(".whl"):
            name, version, _, _ = parse_wheel_filename(filename)
        elif filename.endswith((".tar.gz", ".zip")):
            name, version = parse_sdist_filename(filename)
        else:
            return None
    except (InvalidWheelFilename, InvalidSdistFilename):
        return None
    return str(name), str(version)


def releases(package: str, config: IndexConfig) -> dict[str, Release]:
    """Every release of `package` on the indexes and find-links, by version string (PEP 440
    normal form); IndexReadError when an index cannot be read (a missing project page is no error)."""
    name = canonical(package)
    files: list[FileInfo] = []
    for index in config.urls():
        page = index.rstrip("/") + f"/{name}/"
        got = _fetch(page)
        if got is not None:
            files += _files_of_page(page, *got)
    for link in config.find_links:
        if "://" not in link:
            if not os.path.isdir(link):
                continue  # pip, too, passes over a find-links folder that is not there
            files += _folder_files(link)
        else:
            got = _fetch(link)
            if got is not None:
                files += _files_of_page(link, *got)
    out: dict[str, Release] = {}
    for f in files:
        nv = _name_version(f.filename)
        if nv is None or nv[0] != name:
            continue
        out.setdefault(nv[1], Release(nv[1])).files.append(f)
    return out


# --- which releases bisect may try -------------------------------------------------------------

def supported_tags(python: tuple[int, int]) -> set[Tag]:
    """The wheel tags a CPython `python` (major, minor) installs on this machine."""
    from packaging import tags
    if python == sys.version_info[:2] and sys.implementation.name == "cpython":
        return set(tags.sys_tags())
    platforms = list(tags.platform_tags())
    return (set(tags.cpython_tags(python, platforms=platforms))
            | set(tags.compatible_tags(python, f"cp{python[0]}{python[1]}", platforms)))


def installable(release: Release, python: tuple[int, int, int], tags: set[Tag], yanked: bool = False) -> bool:
    """Whether `release` has a wheel for these tags whose Requires-Python admits `python`."""
    from packaging.specifiers import InvalidSpecifier, SpecifierSet
    from packaging.utils import InvalidWheelFilename, parse_wheel_filename
    for f in release.files:
        if not f.filename.endswith(".whl") or (f.yanked and not yanked):
            continue
        try:
            file_tags = parse_wheel_filename(f.filename)[3]
            if f.requires_python and ".".join(map(str, python)) not in SpecifierSet(f.requires_python):
                continue
        except (InvalidWheelFilename, InvalidSpecifier):
            continue
        if file_tags & tags:
            return True
    return False


def candidates(found: dict[str, Release], python: tuple[int, int, int], pre: bool = False, yanked: bool = False,
               keep: tuple[str, ...] = ()) -> tuple[list[str], dict[str, str]]:
    """(the versions bisect may try, oldest first; {version: why left out}). The versions in
    `keep` (--good and --bad) are tried whatever they are, if a wheel installs."""
    tags = supported_tags(python[:2])
    kept, left_out = [], {}
    for version, release in found.items():
        v = parse_version(version)
        if version not in keep and v.is_prerelease and not pre:
            left_out[version] = "pre-release"
        elif version not in keep and release.yanked and not yanked:
            left_out[version] = "yanked"
        elif not installable(release, python, tags, yanked or version in keep):
            left_out[version] = f"no wheel for Python {python[0]}.{python[1]} on this platform"
        else:
            kept.append(version)
    return sorted(kept, key=parse_version), left_out


def between(versions: list[str], good: str, bad: str) -> list[str]:
    """The versions from good to bad, both included, oldest first."""
    lo, hi = parse_version(good), parse_version(bad)
    return [v for v in versions if lo <= parse_version(v) <= hi]
