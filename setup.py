"""The build step pyproject.toml cannot state as stable configuration: the reference's C kernel.

It is optional: where no C compiler is found the install goes on, and the reference computes in
NumPy (the same formula, slower); harness/core/kernel.py loads the kernel with ctypes.
"""

import sys

from setuptools import Extension, setup

# GCC / Clang flags: errno and FP traps off so that exp's loop vectorises (no -ffast-math: the
# kernel's compensated sums and exact range reduction depend on the order of operations);
# -Wno-psabi: GCC notes that the baseline clone passes 32-byte vectors differently, harmless in a
# file whose vector functions are all inlined
FLAGS = [] if sys.platform == "win32" else ["-O3", "-fno-math-errno", "-fno-trapping-math", "-Wno-psabi"]

setup(ext_modules=[Extension("xentcheck.core._xent", ["harness/core/_xent.c"], extra_compile_args=FLAGS,
                             libraries=[] if sys.platform == "win32" else ["m"], optional=True)])
