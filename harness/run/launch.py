"""Starts a backend worker in any interpreter, on this run's own copy of xentcheck.

`python .../xentcheck/run/launch.py SPEC` (or `--rank TASK`: run/rank.py; `--zygote PRELOAD`:
run/zygote.py) with XENTCHECK_PACKAGES set to the folders the parent imported `xentcheck`,
`xentcheck.backends` and `xentcheck.reports` from (a source checkout maps them from harness/,
backends/ and reports/). They are imported from there whatever the interpreter has installed, so
a `--python` interpreter runs the parent's code, and its frameworks from its own site-packages.
"""

import importlib.abc
import importlib.util
import json
import os
import sys

ENV = "XENTCHECK_PACKAGES"


class _PackageFolders(importlib.abc.MetaPathFinder):
    """Finds the named packages in the given folders; their submodules are found as usual."""

    def __init__(self, folders: dict[str, str]):
        self.folders = folders

    def find_spec(self, fullname, path=None, target=None):
        folder = self.folders.get(fullname)
        if folder is None:
            return None
        return importlib.util.spec_from_file_location(fullname, os.path.join(folder, "__init__.py"),
                                                      submodule_search_locations=[folder])


def main() -> int:
    sys.path.pop(0)  # this script's folder: its modules (plan, resume, ...) must not shadow top-level names
    sys.meta_path.insert(0, _PackageFolders(json.loads(os.environ[ENV])))
    if sys.argv[1:2] == ["--rank"]:  # one rank of a variant run on several (run/ranks.py)
        from xentcheck.run.rank import main as rank_main
        return rank_main(sys.argv[2:])
    if sys.argv[1:2] == ["--zygote"]:  # the starter of a worker's gloo ranks (run/zygote.py)
        from xentcheck.run.zygote import main as zygote_main
        return zygote_main(json.loads(sys.argv[2]))
    from xentcheck.run.worker import main as worker_main
    return worker_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
