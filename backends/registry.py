"""Finding backends: built-in names, plugin files and the `xentcheck.backends` entry points.

A backend spec is one of: a built-in name ("torch"), an entry-point name, or "file:PATH" for a
Python file that defines `BACKEND` (a Backend subclass or instance) or exactly one Backend
subclass; "file:PATH::NAME" takes the file's module-level NAME (a Backend subclass or instance)
instead, which is how the Python API hands a worker a class from the caller's own module.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from importlib.metadata import entry_points
from pathlib import Path

from xentcheck.backends.base import Backend

BUILTIN: dict[str, str] = {
    "numpy": "xentcheck.backends.numpy.ce:NumpyBackend",
    "torch": "xentcheck.backends.torch.ce:TorchBackend",
    "tensorflow": "xentcheck.backends.tensorflow.ce:TensorflowBackend",
    "jax": "xentcheck.backends.jax.ce:JaxBackend",
    "keras-tensorflow": "xentcheck.backends.keras.ce:KerasTensorflowBackend",
    "keras-jax": "xentcheck.backends.keras.ce:KerasJaxBackend",
    "keras-torch": "xentcheck.backends.keras.ce:KerasTorchBackend",
}
# Backends a default-suite run leaves out unless named: each Keras backend starts one more
# framework worker and doubles its framework's time (keras-jax: JAX's), so the default run keeps to
# the four frameworks; `--suite full` and `--backends keras-jax` run them.
FULL_SUITE_ONLY: tuple[str, ...] = ("keras-tensorflow", "keras-jax", "keras-torch")
# Optional kernels shipped with xentcheck, each behind an extra (pip install 'xentcheck[cce]'): run
# only when named (`--backends cce`), never by default, so that a default run is the same whether
# or not they are installed; without their package every case is skipped with the reason.
OPTIONAL: dict[str, str] = {
    "cce": "xentcheck.backends.torch.cce:CutCrossEntropy",
    "cce-triton": "xentcheck.backends.torch.cce:CutCrossEntropyTriton",
    "liger-linear": "xentcheck.backends.torch.liger_linear:LigerFusedLinearCE",
    "liger-distill": "xentcheck.backends.torch.liger_distill:LigerDistill",
    "liger-grpo": "xentcheck.backends.torch.liger_grpo:LigerGrpo",
    "jax-cce": "xentcheck.backends.jax.jax_cce:JaxCCE",
}
ENTRY_POINT_GROUP = "xentcheck.backends"
FILE_PREFIX, NAME_SEP = "file:", "::"


class BackendLoadError(Exception):
    """A plugin could not be turned into a Backend (missing file, syntax error, no class...)."""


def plugin_names() -> dict[str, str]:
    """Entry-point backends: name -> 'module:attr'. Never imports them."""
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def known_names() -> list[str]:
    return list(BUILTIN) + [n for n in plugin_names() if n not in BUILTIN]


def _instantiate(obj: object, where: str) -> Backend:
    if isinstance(obj, type) and issubclass(obj, Backend):
        return obj()
    if isinstance(obj, Backend):
        return obj
    raise BackendLoadError(f"{where} is not a Backend subclass or instance")


def _from_target(target: str) -> Backend:
    module_name, _, attr = target.partition(":")
    module = importlib.import_module(module_name)
    return _instantiate(getattr(module, attr), target)


def split_file(text: str) -> tuple[str, str | None]:
    """"PATH::NAME" -> (PATH, NAME); "PATH" -> (PATH, None). Python names never hold ':'."""
    path, sep, name = text.rpartition(NAME_SEP)
    return (path, name) if sep and name.isidentifier() else (text, None)


def _from_file(text: str) -> Backend:
    path, name = split_file(text)
    p = Path(path)
    if not p.is_file():
        raise BackendLoadError(f"backend file not found: {path}")
    mod_name = f"xentcheck_plugin_{abs(hash(str(p.resolve())))}"
    spec = importlib.util.spec_from_file_location(mod_name, p)
    if spec is None or spec.loader is None:
        raise BackendLoadError(f"cannot load {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # a plugin's own bug: report it, with its type
        raise BackendLoadError(f"{path} failed to import: {type(exc).__name__}: {exc}") from exc
    if name is not None:
        if not hasattr(module, name):
            raise BackendLoadError(f"{path} defines no {name!r} at module level")
        return _instantiate(getattr(module, name), f"{path}: {name}")
    if hasattr(module, "BACKEND"):
        return _instantiate(module.BACKEND, f"{path}: BACKEND")
    classes = [v for v in vars(module).values()
               if isinstance(v, type) and issubclass(v, Backend) and v is not Backend
               and v.__module__ == mod_name]
    if len(classes) != 1:
        raise BackendLoadError(f"{path} must define BACKEND or exactly one Backend subclass "
                               f"(found {len(classes)})")
    return classes[0]()


def create(spec: str) -> Backend:
    """The Backend for `spec`; framework imports happen later, in Backend.load()."""
    if spec.startswith(FILE_PREFIX):
        return _from_file(spec[len(FILE_PREFIX):])
    if spec in BUILTIN:
        return _from_target(BUILTIN[spec])
    if spec in OPTIONAL:
        return _from_target(OPTIONAL[spec])
    plugins = plugin_names()
    if spec in plugins:
        try:
            return _from_target(plugins[spec])
        except BackendLoadError:
            raise
        except Exception as exc:
            raise BackendLoadError(f"entry point {spec!r} failed: {type(exc).__name__}: {exc}") from exc
    raise BackendLoadError(f"unknown backend {spec!r} (known: {', '.join(known_names())})")
