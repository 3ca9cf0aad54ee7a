"""The build steps pyproject.toml cannot state as stable configuration.

- The package list, derived from the folders: `xentcheck` is harness/, and every folder below it
  (through the backends/ and reports/ symlinks) is a subpackage, so a new folder is installed
  without editing a list. Folders without an __init__.py (the templates) are data packages.
- The reference's C kernel. It is optional: where no C compiler is found the install goes on, and
  the reference computes in NumPy (the same formula, slower); harness/core/kernel.py loads the
  kernel with ctypes.
"""

import sys

from setuptools import Extension, find_namespace_packages, setup

PACKAGES = ["xentcheck"] + [f"xentcheck.{p}" for p in find_namespace_packages("harness", exclude=["*__pycache__*"])]

# GCC / Clang flags: errno and FP traps off so that exp's loop vectorises (no -ffast-math: the
# kernel's compensated sums and exact range reduction depend on the order of operations);
# -Wno-psabi: GCC notes that the baseline clone passes 32-byte vectors differently, harmless in a
# file whose vector functions are all inlined
FLAGS = [] if sys.platform == "win32" else ["-O3", "-fno-math-errno", "-fno-trapping-math", "-Wno-psabi"]

setup(packages=PACKAGES,
      ext_modules=[Extension("xentcheck.core._xent", ["harness/core/_xent.c"], extra_compile_args=FLAGS,
                             libraries=[] if sys.platform == "win32" else ["m"], optional=True)])
