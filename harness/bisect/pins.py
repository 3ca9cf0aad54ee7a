"""What each environment is asked to install.

The good version's environment comes first: the package at that version, its lockstep partners,
the `--with` pins, the packages the backend imports and what the harness's worker needs (numpy,
ml_dtypes, mpmath), the resolver choosing every version not given. Every other version's
environment then pins every other package to the version the good environment has, so that the
package is the one thing that changes. Two relaxations, each recorded:

- lockstep partners move with the package: jaxlib to the same version as jax when that release
  exists (else jax's own requirement chooses it), keras and tensorboard with tensorflow;
- when the pinned set cannot be installed together (an older jax needs an older numpy,
  ml_dtypes, scipy), the fallback leaves the packages the moved package depends on, in the good
  environment, to the resolver and keeps the unrelated pins; `--with` pins are always kept.
"""

from __future__ import annotations

from collections.abc import Iterable

from xentcheck.bisect.envs import WORKER_NEEDS
from xentcheck.bisect.versions import canonical

# package -> the packages released with it under the same version number
LOCKSTEP: dict[str, tuple[str, ...]] = {"jax": ("jaxlib",), "jaxlib": ("jax",)}
# package -> packages that must move with it, whose version the resolver chooses
MOVES_WITH: dict[str, tuple[str, ...]] = {
    "tensorflow": ("keras", "tensorboard", "tf-keras"),
    "tensorflow-cpu": ("keras", "tensorboard", "tf-keras"),
}
# backend -> the packages its adapter imports (installed unpinned in the good environment)
BACKEND_PACKAGES: dict[str, tuple[str, ...]] = {
    "jax": ("jax", "optax"),
    "torch": ("torch",),
    "tensorflow": ("tensorflow-cpu",),
    "keras-jax": ("keras", "jax"),
    "keras-torch": ("keras", "torch"),
    "keras-tensorflow": ("keras", "tensorflow-cpu"),
}
# a package that a backend imports -> the backend that runs it, when --backends is not given
DEFAULT_BACKEND: dict[str, str] = {"jax": "jax", "jaxlib": "jax", "optax": "jax", "torch": "torch",
                                   "tensorflow": "tensorflow", "tensorflow-cpu": "tensorflow"}


def parse_with(values: Iterable[str], package: str) -> dict[str, str]:
    """{canonical name: requirement} of the --with PKG==V values; ValueError on a bad one."""
    from packaging.requirements import InvalidRequirement, Requirement
    out: dict[str, str] = {}
    for value in values:
        try:
            req = Requirement(value)
        except InvalidRequirement as exc:
            raise ValueError(f"--with {value!r}: not a requirement ({exc})") from None
        name = canonical(req.name)
        if name == canonical(package):
            raise ValueError(f"--with {value!r}: {package} is the package being bisected")
        if name in out:
            raise ValueError(f"--with names {req.name} twice")
        out[name] = str(req)
    return out


def partners(package: str, version: str, partner_versions: dict[str, set[str]]) -> dict[str, str | None]:
    """{partner: the same version where that release exists, else None (the resolver chooses)}."""
    name = canonical(package)
    out: dict[str, str | None] = {p: (version if version in partner_versions.get(p, set()) else None)
                                  for p in LOCKSTEP.get(name, ())}
    out.update({p: None for p in MOVES_WITH.get(name, ())})
    return out


def _own(package: str, version: str, moved: dict[str, str | None], with_pins: dict[str, str]) -> list[str]:
    own = [f"{package}=={version}"]
    own += [f"{p}=={v}" for p, v in moved.items() if v is not None and p not in with_pins]
    return own + list(with_pins.values())


def good_requirements(package: str, version: str, moved: dict[str, str | None], with_pins: dict[str, str],
                      backends: Iterable[str]) -> list[str]:
    """The good version's environment: the resolver chooses whatever is not given."""
    reqs = _own(package, version, moved, with_pins)
    given = {canonical(package), *moved, *with_pins}
    extra = [p for b in backends for p in BACKEND_PACKAGES.get(b, ())] + list(WORKER_NEEDS)
    return reqs + [p for p in dict.fromkeys(canonical(e) for e in extra) if p not in given]


def pinned_requirements(package: str, version: str, moved: dict[str, str | None], with_pins: dict[str, str],
                        good_freeze: dict[str, str]) -> list[str]:
    """Another version: every package but the moved ones at the good environment's version."""
    free = {canonical(package), *moved, *with_pins}
    return _own(package, version, moved, with_pins) + [f"{n}=={v}" for n, v in sorted(good_freeze.items())
                                                       if n not in free]


def dependencies(roots: Iterable[str], requires: dict[str, list[str]]) -> set[str]:
    """The installed packages that `roots` require, directly or not (roots included)."""
    seen: set[str] = set()
    todo = [canonical(r) for r in roots]
    while todo:
        name = todo.pop()
        if name in seen or name not in requires:
            continue
        seen.add(name)
        todo += requires[name]
    return seen


def relaxed_requirements(package: str, version: str, moved: dict[str, str | None], with_pins: dict[str, str],
                         good_freeze: dict[str, str], good_requires: dict[str, list[str]]) -> list[str]:
    """The fallback: the moved packages' dependencies (in the good environment) unpinned too."""
    free = dependencies([package, *moved], good_requires) | {canonical(package), *moved, *with_pins}
    kept = [f"{n}=={v}" for n, v in sorted(good_freeze.items()) if n not in free]
    unpinned = sorted(n for n in free if n in good_freeze and n not in with_pins and n != canonical(package)
                      and not (n in moved and moved[n] is not None))
    return _own(package, version, moved, with_pins) + kept + unpinned
