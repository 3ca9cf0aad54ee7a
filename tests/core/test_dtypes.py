"""The dtype table's facts, and ml_dtypes imported only where bfloat16 is used."""

import subprocess
import sys

import ml_dtypes
import numpy as np
import pytest

from tests.conftest import ROOT
from xentcheck.core.dtypes import DTYPE_NAMES, info


@pytest.mark.parametrize("name", DTYPE_NAMES)
def test_table_matches_the_libraries_finfo(name):
    d = info(name)
    fi = ml_dtypes.finfo(d.np_type) if name == "bfloat16" else np.finfo(d.np_type)
    assert np.dtype(d.np_type).name == name
    assert d.max == float(fi.max) and d.eps == float(fi.eps) / 2 and 2.0 ** d.min_exp == float(fi.tiny)


def test_a_float32_case_never_imports_ml_dtypes_and_a_bfloat16_case_does():
    code = ("import sys\n"
            "from xentcheck.backends.registry import create\n"
            "from xentcheck.core.cases import Case, make_inputs\n"
            "from xentcheck.problems.ce.reference import reference\n"
            "from xentcheck.run.protocol import RunRequest\n"
            "from xentcheck.run.worker import run_case\n"
            "b = create('numpy'); b.load()\n"
            "for cid in ('scale1e+0_float32_16x10_index_mean', 'scale1e+2_float32_16x10_onehot_sum_opt-cap30'):\n"
            "    c = Case.from_id(cid); reference(c, make_inputs(c, 0))\n"
            "    reply = run_case(b, RunRequest(cid, 0, 'cpu', sys.argv[1]))\n"
            "    assert reply.results[0].status == 'ok', reply\n"
            "print('ml_dtypes' in sys.modules)\n"
            "c = Case.from_id('scale1e+0_bfloat16_16x10_index_mean'); make_inputs(c, 0)\n"
            "print('ml_dtypes' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code, "/tmp/xentcheck-dtypes-test"], capture_output=True, text=True,
                         cwd=ROOT, check=True)
    assert out.stdout.split() == ["False", "True"]
