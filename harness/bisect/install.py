"""Installers: the interpreter an environment is made from, its venv, and one install into it.

uv when it is there (`pip install 'xentcheck[bisect]'`: the `uv` package ships the binary, or
a `uv` on PATH), pip otherwise (pip >= 22.3, running from this interpreter with `--python`, so
the environments need no pip of their own). Every command's output goes to a log file; a
failure is reported with the last lines that say why.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

INSTALLERS = ("auto", "uv", "pip")
INSTALL_TIMEOUT_S = 3600.0  # a hung download must not hang the hunt


@dataclass(frozen=True)
class Installer:
    kind: str  # "uv" or "pip"
    command: tuple[str, ...]  # how to start it

    def describe(self) -> str:
        return f"{self.kind} ({' '.join(self.command)})"


@dataclass(frozen=True)
class Interpreter:
    path: str
    version: tuple[int, int, int]

    @property
    def short(self) -> str:
        return f"{self.version[0]}.{self.version[1]}"


def _uv() -> str | None:
    try:
        import uv  # the `uv` package of the [bisect] extra
        return uv.find_uv_bin()
    except (ImportError, FileNotFoundError):
        return shutil.which("uv")


def _pip_works() -> bool:
    try:
        out = subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return False
    return out.returncode == 0


def find_installer(choice: str = "auto") -> Installer:
    """uv, else pip; ValueError naming what is missing."""
    if choice not in INSTALLERS:
        raise ValueError(f"unknown installer {choice!r} (known: {', '.join(INSTALLERS)})")
    if choice in ("auto", "uv"):
        uv = _uv()
        if uv:
            return Installer("uv", (uv,))
        if choice == "uv":
            raise ValueError("--installer uv: uv is not installed (pip install 'xentcheck[bisect]')")
    if _pip_works():
        return Installer("pip", (sys.executable, "-m", "pip"))
    raise ValueError("neither uv nor pip is available to build environments (pip install 'xentcheck[bisect]')")


def _version_of(python: str) -> tuple[int, int, int]:
    out = subprocess.run([python, "-c", "import sys; print(*sys.version_info[:3])"], capture_output=True, text=True,
                         timeout=60)
    if out.returncode != 0:
        raise ValueError(f"cannot run {python}: {out.stderr.strip()[-200:]}")
    major, minor, micro = map(int, out.stdout.split())
    return major, minor, micro


def find_python(request: str | None, installer: Installer) -> Interpreter:
    """The interpreter for the environments: this one's by default, else Python `request` (X.Y)
    as uv finds it (`uv python find`) or as `pythonX.Y` on PATH, or the interpreter at that path."""
    base = getattr(sys, "_base_executable", sys.executable)
    if request is None or request == f"{sys.version_info[0]}.{sys.version_info[1]}":
        return Interpreter(base, tuple(sys.version_info[:3]))  # type: ignore[arg-type]
    if os.sep in request:
        if not (os.path.isfile(request) and os.access(request, os.X_OK)):
            raise ValueError(f"--python {request}: not an executable file")
        return Interpreter(os.path.abspath(request), _version_of(request))
    parts = request.split(".")
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise ValueError(f"--python {request}: give a version X.Y, such as 3.12, or an interpreter's path")
    path = None
    if installer.kind == "uv":
        out = subprocess.run([*installer.command, "python", "find", request], capture_output=True, text=True, timeout=120)
        path = out.stdout.strip() if out.returncode == 0 else None
    path = path or shutil.which(f"python{request}")
    if not path:
        raise ValueError(f"--python {request}: no Python {request} found (install it, e.g. `uv python install {request}`)")
    version = _version_of(path)
    if f"{version[0]}.{version[1]}" != request:
        raise ValueError(f"--python {request}: {path} is Python {version[0]}.{version[1]}")
    return Interpreter(path, version)


def venv_python(folder: Path) -> Path:
    return folder / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _run(command: list[str], log: Path, cwd: Path) -> tuple[bool, str]:
    """Run one command, appending its output to `log`; (ok, the last lines when it failed)."""
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1", "UV_NO_PROGRESS": "1"}
    env.pop("VIRTUAL_ENV", None)  # the target is named; an activated venv must not be taken instead
    with open(log, "a", encoding="utf-8") as f:
        f.write("$ " + " ".join(command) + "\n")
        f.flush()
        try:
            out = subprocess.run(command, stdout=f, stderr=subprocess.STDOUT, cwd=cwd, env=env,
                                 timeout=INSTALL_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            f.write(f"timed out after {INSTALL_TIMEOUT_S:g} s\n")
            return False, f"timed out after {INSTALL_TIMEOUT_S:g} s"
        except OSError as exc:
            f.write(f"{exc}\n")
            return False, str(exc)
        f.write(f"[exit status {out.returncode}]\n")
    if out.returncode == 0:
        return True, ""
    return False, why(log.read_text(encoding="utf-8", errors="replace"))


def why(output: str, limit: int = 600) -> str:
    """What an installer's output says went wrong: its last command's lines from the first error
    on (uv's "error: ... cause: Because ...", pip's "ERROR: ..."), else its last lines."""
    text = output.rsplit("\n$ ", 1)[-1]  # the last command's output, its command line first
    rows = [r.strip() for r in text.splitlines()[1:] if r.strip() and not r.startswith("[exit status")]
    first = next((i for i, r in enumerate(rows) if r.lower().startswith(("error", "×"))), max(0, len(rows) - 6))
    return " ".join(rows[first:])[:limit] or "the installer failed without saying why"


def create_venv(installer: Installer, python: Interpreter, folder: Path, log: Path) -> tuple[bool, str]:
    if installer.kind == "uv":
        return _run([*installer.command, "venv", "--quiet", "--no-project", "--python", python.path, str(folder)],
                    log, folder.parent)
    return _run([python.path, "-m", "venv", "--without-pip", str(folder)], log, folder.parent)


def install(installer: Installer, folder: Path, requirements: list[str], index_args: list[str],
            log: Path) -> tuple[bool, str]:
    """Install `requirements` into the venv `folder`; (ok, why not)."""
    python = str(venv_python(folder))
    if installer.kind == "uv":
        command = [*installer.command, "pip", "install", "--python", python, *index_args, *requirements]
    else:
        command = [*installer.command, "--python", python, "install", "--no-input", *index_args, *requirements]
    return _run(command, log, folder.parent)
