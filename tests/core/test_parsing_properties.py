"""Property-based tests of option and configuration parsing: valid input round-trips, invalid
input raises ValueError (or, on the command line, one error line and exit status 2), and
nothing else ever escapes."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import tempfile
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xentcheck import cli
from xentcheck.backends.registry import BUILTIN
from xentcheck.core.cases import LABEL_FORMS, MAX_ELEMENTS, MAX_K, MAX_N, REDUCTIONS, Case, default_suite
from xentcheck.core.dtypes import DTYPE_NAMES
from xentcheck.core.tolerances import PRESETS, Tolerances, parse_spec
from xentcheck.core.tolerances import TOLERANCE_ROWS as OUTPUTS
from xentcheck.run import memory
from xentcheck.run import plan as runplan

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

tol_values = st.floats(min_value=0, allow_nan=False, allow_infinity=False)
spec_dicts = st.dictionaries(st.sampled_from(DTYPE_NAMES), tol_values, min_size=1)
# text built from the pieces specs are made of reaches deeper than arbitrary text
spec_pieces = st.sampled_from([*DTYPE_NAMES, "=", ",", " ", ".", "e", "-", "+", "1", "0", "5", "nan", "inf", "x", ""])
spec_text = st.one_of(st.text(max_size=40), st.lists(spec_pieces, max_size=12).map("".join))


def spec_of(values: dict[str, float]) -> str:
    return ",".join(f"{d}={v!r}" for d, v in values.items())


@FAST
@given(spec_dicts)
def test_parse_spec_round_trips_per_dtype_values(values):
    assert parse_spec(spec_of(values), "rtol") == values


@FAST
@given(tol_values)
def test_parse_spec_applies_a_single_value_to_every_dtype(value):
    assert parse_spec(f" {value!r} ", "atol") == {d: value for d in DTYPE_NAMES}


@FAST
@given(spec_text)
def test_parse_spec_returns_valid_tolerances_or_raises_value_error(text):
    try:
        parsed = parse_spec(text, "rtol")
    except ValueError as exc:
        assert str(exc).startswith("--rtol")
        return
    assert parsed and set(parsed) <= set(DTYPE_NAMES)
    assert all(0 <= v < float("inf") for v in parsed.values())


@FAST
@given(st.sampled_from(["rtol", "atol"]), st.one_of(spec_text, spec_dicts.map(spec_of)))
def test_override_applies_the_whole_spec_or_nothing(which, text):
    tol = Tolerances()
    before = copy.deepcopy(tol.table)
    try:
        parsed = parse_spec(text, which)
    except ValueError:
        parsed = None
    if parsed is None:
        with pytest.raises(ValueError):  # override refuses what parse_spec refuses ...
            tol.override(which, text)
        assert tol.table == before  # ... and changes nothing
        return
    tol.override(which, text)
    col = 0 if which == "rtol" else 1
    for out in OUTPUTS:
        for d in DTYPE_NAMES:
            assert tol.table[out][d][col] == parsed.get(d, before[out][d][col])
            assert tol.table[out][d][1 - col] == before[out][d][1 - col]


@st.composite
def cases(draw) -> Case:
    family = draw(st.one_of(
        st.sampled_from(["neartie", "dominant", "masked"]),
        st.builds("{}{}{}e{}{}".format, st.sampled_from(["scale", "offset"]), st.integers(0, 999),
                  st.sampled_from(["", ".5", ".25"]), st.sampled_from(["", "+", "-"]), st.integers(0, 300))))
    n = draw(st.integers(1, MAX_N))
    k = draw(st.integers(2, min(MAX_K, MAX_ELEMENTS // n)))
    return Case(family, draw(st.sampled_from(DTYPE_NAMES)), n, k, draw(st.sampled_from(LABEL_FORMS)),
                draw(st.sampled_from(REDUCTIONS)))


@FAST
@given(cases())
def test_case_ids_round_trip(case):
    assert Case.from_id(case.id) == case


# near misses: the characters that make ids, a few that look alike (newline, a non-ASCII digit)
SIMILAR = st.text(st.sampled_from("01_x+-.e \n\u0663"), max_size=2) | st.text(max_size=2)


def mutated_ids(case: Case, data) -> str:
    text = case.id
    i = data.draw(st.integers(0, len(text)))
    return text[:i] + data.draw(SIMILAR) + text[i + data.draw(st.integers(0, 2)):]


def part(valid: list[str]):
    return st.sampled_from(valid) | st.from_regex(r"[a-z0-9.+-]{0,8}", fullmatch=True)


# ids assembled from valid or junk parts, numbers with leading zeros or non-ASCII digits, something
# before or after
digits = st.from_regex(r"[0-9]{1,7}", fullmatch=True) | st.from_regex("[0-9\u0663]{1,4}", fullmatch=True)
id_like = st.builds("{}{}_{}_{}x{}_{}_{}{}".format, SIMILAR, part(["neartie", "scale1e+0", "offset1.5e4"]),
                    part(list(DTYPE_NAMES)), digits, digits, part(list(LABEL_FORMS)), part(list(REDUCTIONS)), SIMILAR)
odd_shapes = st.builds("scale1e+0_float32_{}x{}_index_mean".format, digits, digits)


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(max_size=60), id_like, odd_shapes), cases(), st.data())
def test_case_from_id_accepts_only_canonical_ids(text, case, data):
    for candidate in (text, mutated_ids(case, data)):
        try:
            parsed = Case.from_id(candidate)
        except ValueError:
            continue
        assert parsed.id == candidate  # whatever is accepted is the id of what it parsed to


# --- run.json ----------------------------------------------------------------------------

SUITE = default_suite()


@st.composite
def plans(draw) -> runplan.RunPlan:
    return runplan.RunPlan(
        backends=draw(st.lists(st.sampled_from(list(BUILTIN)), min_size=1, unique=True)),
        dtypes=draw(st.lists(st.sampled_from(DTYPE_NAMES), min_size=1, unique=True)),
        seed=draw(st.integers(0, 2**64 - 1)),
        cases=draw(st.lists(st.sampled_from(SUITE), min_size=1, max_size=5, unique=True)),
        device=draw(st.sampled_from(runplan.DEVICES)),
        preset=draw(st.sampled_from(list(PRESETS))),
        rtol=draw(st.lists(spec_dicts.map(spec_of), max_size=2)),
        atol=draw(st.lists(tol_values.map(repr), max_size=2)),
        case_timeout=draw(st.floats(min_value=1e-3, allow_nan=False)),
        worker_memory=draw(st.none() | st.integers(memory.MIN_CEILING, 2**60)))


json_scalars = st.none() | st.booleans() | st.integers() | st.integers(10**300, 10**400) | st.floats() | st.text(max_size=10)
json_values = st.recursive(json_scalars,
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                      max_size=3), max_leaves=8)


@FAST
@given(plans())
def test_run_config_round_trips_through_json(plan):
    assert runplan.RunPlan.from_json(json.loads(json.dumps(plan.to_json()))) == plan


@settings(max_examples=400, deadline=None)
@given(plans(), st.sampled_from(["format", "backends", "dtypes", "seed", "cases", "device", "preset", "rtol", "atol",
                                 "case_timeout", "worker_memory"]), st.one_of(st.just("<delete>"), json_scalars, json_values))
def test_damaged_run_config_raises_value_error_only(plan, field, value):
    data = plan.to_json()
    if value == "<delete>":
        del data[field]
    else:
        data[field] = value
    try:
        runplan.RunPlan.from_json(data)
    except ValueError:
        pass


@FAST
@given(json_values)
def test_any_json_as_run_config_raises_value_error_only(data):
    try:
        runplan.RunPlan.from_json(data)
    except ValueError:
        pass


# --- the command line, in process ---------------------------------------------------------

VALUES = {
    "--backends": st.sampled_from(["numpy", "numpy,jax", "nosuch", "", ",", "numpy,numpy"]),
    "--dtypes": st.one_of(st.sampled_from(["float32", "float16,float64", "float8", " , "]), st.text(max_size=8)),
    "--seed": st.one_of(st.integers(-5, 2**65).map(str), st.text(max_size=6)),
    "--cases": st.one_of(st.integers(-2, 10**6).map(str), st.text(max_size=4)),
    "--case": st.one_of(st.sampled_from(SUITE).map(lambda c: c.id), id_like, st.text(max_size=20)),
    "--device": st.sampled_from(["cpu", "cuda", "tpu"]),
    "--tolerances": st.sampled_from(["xentcheck", "torch", "jax", "foo"]),
    "--rtol": st.one_of(spec_text, spec_dicts.map(spec_of)),
    "--atol": spec_text,
    "--case-timeout": st.one_of(st.sampled_from(["0", "-1", "nan", "inf", "1e400", "3"]), st.text(max_size=5)),
    "--worker-memory": st.one_of(st.sampled_from(["2G", "512M", "1.5GiB", "none", "auto", "0", "1e9", "63M"]),
                                 st.text(max_size=6)),
}
options = st.lists(st.sampled_from(sorted(VALUES)).flatmap(lambda o: st.tuples(st.just(o), VALUES[o])), max_size=5)


def run_main(args: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = cli.main(args)
    return rc, err.getvalue()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(options)
def test_run_options_give_a_plan_or_one_error_line(opts):
    """Parsing and validation for real, with the run itself replaced: either the plan stored in
    run.json is the one that would run, or exit status 2 with one line."""
    with tempfile.TemporaryDirectory() as tmp, mock.patch.object(cli, "_execute", return_value=0) as execute:
        out = Path(tmp) / "out"
        rc, err = run_main(["run", "--out", str(out), *[x for pair in opts for x in pair]])
        if rc == 2:
            assert len(err.splitlines()) == 1 and err.startswith("xentcheck: error: "), err
            assert not execute.called
        else:
            assert rc == 0 and err == ""
            assert execute.call_args.args[0] == runplan.load(out)


@FAST
@given(st.one_of(st.integers(-3, 500).map(str), st.text(max_size=5)), VALUES["--dtypes"])
def test_cases_command_lists_or_gives_one_error_line(n, dtypes):
    rc, err = run_main(["cases", "--cases", n, "--dtypes", dtypes])
    assert rc == 0 and err == "" or rc == 2 and len(err.splitlines()) == 1 and err.startswith("xentcheck: error: ")
