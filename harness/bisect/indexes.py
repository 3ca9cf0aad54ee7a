"""Where packages come from: the indexes and folders bisect lists releases from and installs from.

The command line wins: `--find-links DIR` is that folder alone (no index is asked: bisection
works offline against a folder of wheels), `--index-url URL` that index alone. Otherwise the
user's own settings apply, as the installers read them: uv's environment variables
(UV_DEFAULT_INDEX, UV_INDEX_URL, UV_INDEX, UV_EXTRA_INDEX_URL, UV_FIND_LINKS), then pip's
(PIP_INDEX_URL, PIP_EXTRA_INDEX_URL, PIP_FIND_LINKS) and pip's configuration files (`pip config
list`: pip.conf), then PyPI. pip reads its own settings when it installs; uv is handed them as
arguments, with `--index-strategy unsafe-best-match`, pip's rule of taking the best version over
every index (uv's default would take the first index that has the package at all).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass

PYPI = "https://pypi.org/simple"


@dataclass(frozen=True)
class IndexConfig:
    index_url: str | None = None  # None: the installer's default (PyPI, or the one in uv.toml)
    extra_index_urls: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()  # folders or URLs of pages of links
    no_index: bool = False  # only find_links
    from_command_line: bool = False  # --index-url / --find-links given: pip is told too

    def urls(self) -> list[str]:
        """The simple-API indexes to list releases from, the main one first."""
        return [] if self.no_index else [self.index_url or PYPI, *self.extra_index_urls]

    def uv_args(self) -> list[str]:
        if self.no_index:
            return ["--no-index", *[a for f in self.find_links for a in ("--find-links", f)]]
        return ((["--index-url", self.index_url] if self.index_url else []) + ["--index-strategy", "unsafe-best-match"]
                + [a for u in self.extra_index_urls for a in ("--extra-index-url", u)]
                + [a for f in self.find_links for a in ("--find-links", f)])

    def pip_args(self) -> list[str]:
        """pip reads the user's settings itself; only the command line's are handed on."""
        if not self.from_command_line:
            return []
        if self.no_index:
            return ["--no-index", *[a for f in self.find_links for a in ("--find-links", f)]]
        return ["--index-url", self.index_url] if self.index_url else []

    def describe(self) -> str:
        return ", ".join(self.urls() + [f"--find-links {f}" for f in self.find_links]) or "nothing"

    def to_json(self) -> dict:
        return asdict(self)


def _split(value: str | None) -> list[str]:
    return value.split() if value else []


def _uv_indexes(value: str | None) -> list[str]:
    """UV_INDEX entries are `[NAME=]URL`."""
    return [u.partition("=")[2] if "=" in u and "/" not in u.partition("=")[0] else u for u in _split(value)]


def pip_settings(python: str = sys.executable) -> dict[str, str]:
    """pip's settings (files and PIP_* variables) as `pip config list` prints them, the variables
    over the `install` section over `global`; {} when pip cannot tell."""
    try:
        out = subprocess.run([python, "-m", "pip", "config", "list"], capture_output=True, text=True, timeout=60,
                             env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    rank = {"global": 0, "install": 1, ":env:": 2}
    best: dict[str, tuple[int, str]] = {}
    for line in out.splitlines():
        name, sep, value = line.partition("=")
        section, _, key = name.rpartition(".")
        if not sep or section not in rank:
            continue
        value = value.strip().strip("'\"")
        if key not in best or rank[section] >= best[key][0]:
            best[key] = (rank[section], value)
    return {k: v for k, (_, v) in best.items()}


def from_options(index_url: str | None, find_links: str | None, environ: Mapping[str, str] = os.environ,
                 pip: Mapping[str, str] | None = None) -> IndexConfig:
    """The configuration bisect uses; `pip` is pip_settings() (read only when needed)."""
    if index_url and find_links:
        raise ValueError("give --index-url or --find-links, not both")
    if find_links:
        if not os.path.isdir(find_links):
            raise ValueError(f"--find-links {find_links}: not a folder")
        return IndexConfig(find_links=(os.path.abspath(find_links),), no_index=True, from_command_line=True)
    if index_url:
        return IndexConfig(index_url=index_url.rstrip("/"), from_command_line=True)
    settings = pip_settings() if pip is None else pip
    main = environ.get("UV_DEFAULT_INDEX") or environ.get("UV_INDEX_URL") or settings.get("index-url")
    extras = (_uv_indexes(environ.get("UV_INDEX")) + _split(environ.get("UV_EXTRA_INDEX_URL"))
              + _split(settings.get("extra-index-url")))
    links = _split(environ.get("UV_FIND_LINKS")) + _split(settings.get("find-links"))
    no_index = settings.get("no-index", "").lower() in ("1", "true", "yes", "on")
    return IndexConfig(index_url=main.rstrip("/") if main else None,
                       extra_index_urls=tuple(dict.fromkeys(u.rstrip("/") for u in extras)),
                       find_links=tuple(dict.fromkeys(links)), no_index=no_index)
