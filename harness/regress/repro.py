"""Reproducers for failing results, and shrinking them.

For a result, `repro/<id>.npz` holds the exact inputs and the reference of each declared output;
`repro/<id>.py` is a standalone script that imports only NumPy and the one framework, calls the
same API (the recorded implementation) with the same options as the adapter, and prints its
outputs next to the reference: its kind's record writes both (`Problem.write_repro`; plain CE's
in xentcheck.problems.ce.repro). <id> is BACKEND.IMPL.MODE__CASE_ID. The script first sets the
numerics variables the result's worker ran under (`numerics_of`: thread counts, oneDNN, XLA
flags...), before NumPy and the framework are imported.

Shrinking re-runs the backend in this process on smaller inputs derived from the case (its
kind's `shrink_steps`) and keeps a step while the verdict stays the same.
"""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from xentcheck.core.cases import Case, Inputs, make_inputs
from xentcheck.core.evaluate import Subject
from xentcheck.core.evaluate import evaluate as evaluate_output
from xentcheck.core.held_warnings import held_warnings
from xentcheck.core.metrics import BAD_VERDICTS
from xentcheck.core.records import Result
from xentcheck.core.tolerances import TOLERANCE_ROWS, Tolerances
from xentcheck.problems import problem_of
from xentcheck.run.environment import NUMERICS_ENV
from xentcheck.run.worker import output_of

BAD = BAD_VERDICTS
TEMPLATES = Path(__file__).resolve().parent / "repro_templates"  # _numerics.py.in: every kind's prelude
_UNSAFE = re.compile(r"[^A-Za-z0-9._+@=-]")


def result_id(record: Result) -> str:
    """BACKEND.IMPL.MODE__CASE_ID: every result of a run has its own id (and repro files), also
    when a backend runs several implementations and modes."""
    parts = [record.backend or "", record.impl or "", record.mode or ""]
    return _UNSAFE.sub("_", f"{'.'.join(p for p in parts if p)}__{record.case_id}")


def find(records: list[Result], rid: str) -> Result:
    hits = [r for r in records if result_id(r) == rid]
    if not hits and "__" in rid:  # BACKEND__CASE_ID: that backend's result(s) for the case
        backend, _, case_id = rid.partition("__")
        hits = [r for r in records if r.backend == backend and r.case_id == case_id]
    if not hits:
        hits = [r for r in records if r.case_id == rid]
    if not hits:
        raise LookupError(f"no result {rid!r} in the folder (use BACKEND__CASE_ID or a case id)")
    if len(hits) > 1:
        raise LookupError(f"case {rid!r} ran on several backends: give one of "
                          + ", ".join(result_id(r) for r in hits))
    return hits[0]


def specs_by_name(summary: dict) -> dict[str, str]:
    """Backend name -> the spec that produced it (a built-in name, an entry point or file:PATH);
    summary.json lists the backends' hellos in the order of config.backends."""
    specs = summary.get("config", {}).get("backends", [])
    return {b.get("name", s): b.get("spec", s) for b, s in zip(summary.get("backends", []), specs)}


def spec_for(record: Result, summary: dict) -> str:
    backend = str(record.backend)
    spec = specs_by_name(summary).get(backend, backend)
    if "@" in spec and spec.rpartition("@")[2] in (summary.get("config", {}).get("interpreters") or {}):
        raise LookupError(f"{backend} ran in another interpreter (--python): "
                          "re-run it with `python -m xentcheck repro` from that interpreter")
    return spec


def tolerances_of(summary: dict) -> Tolerances:
    t = summary.get("tolerances", {})
    tol = Tolerances(t.get("preset", "xentcheck"))
    for dtype, row in t.get("dtypes", {}).items():
        for what in TOLERANCE_ROWS:
            tol.table[what][dtype] = [row[what]["rtol"], row[what]["atol"]]
    return tol


_BACKENDS: dict[str, object] = {}


class ReproError(Exception):
    """The result cannot be computed again here (its backend will not load, its inputs file
    changed): one line."""


def _backend(spec: str):
    from xentcheck.backends.registry import BackendLoadError, create

    if spec not in _BACKENDS:
        try:
            with held_warnings():  # a plugin's or framework's import warnings, unless it then fails
                b = create(spec)
                b.load()
        except Exception as exc:  # a plugin's import error, a framework not installed: as a run says it
            why = str(exc) if isinstance(exc, BackendLoadError) else f"{type(exc).__name__}: {exc}"
            raise ReproError(f"backend {spec} cannot be loaded here: {' '.join(why.split())}") from None
        _BACKENDS[spec] = b
    return _BACKENDS[spec]


def _variant(backend, case: Case, impl: str | None, mode: str | None):
    """The backend's implementation x mode that produced a result (else its default for the case)."""
    vs = backend.variants()
    return next((v for v in vs if v.impl == impl and v.mode == mode), None) \
        or next((v for v in vs if v.default and case.labels in v.label_forms), vs[0])


def evaluate(case: Case, inputs: Inputs, spec: str, device: str, tol: Tolerances,
             impl: str | None = None, mode: str | None = None, known: Sequence[dict] = (),
             subject: Result | None = None) -> dict:
    """Run the backend's variant on `inputs` in this process and judge the output
    (xentcheck.core.evaluate). Returns the record's fields, with the case, inputs and reference
    (computed here also when the verdict needs none: the reproducer's files hold it)."""
    backend = _backend(spec)
    variant = _variant(backend, case, impl, mode)
    s = subject or Result()
    who = Subject(backend=backend.name if s.backend is None else s.backend, impl=variant.impl, mode=variant.mode,
                  api=variant.api, device=device, seed=s.seed, backend_version=s.backend_version,
                  documented=variant.documented)
    refs: list = []

    def ref():
        if not refs:
            refs.append(problem_of(case).reference(case, inputs, variant.semantics))
        return refs[0]

    result = evaluate_output(case, who, output_of(backend, variant, case, inputs, device), tol,
                             reference=ref, known=known)
    return {"case": case, "inputs": inputs, "ref": ref(), **result.to_dict()}


def rerun(record: Result, spec: str, summary: dict) -> dict:
    """The recorded result computed again, judged with the run's tolerances and known differences."""
    case = Case.from_id(str(record.case_id), record.inputs_file)
    seed = summary.get("config", {}).get("seed", 0) if record.seed is None else record.seed
    known = (summary.get("known_differences") or {}).get("entries", [])
    try:
        inputs = make_inputs(case, seed)
    except ValueError as exc:  # a user's file case whose file is gone or changed (InputsError)
        raise ReproError(str(exc)) from None
    return evaluate(case, inputs, spec, record.device or "cpu", tolerances_of(summary),
                    record.impl, record.mode, known, record)


# --- shrinking ---------------------------------------------------------------------------


def shrink(start: dict, spec: str, summary: dict, max_steps: int = 200,
           log: Callable[[str], None] = lambda m: None) -> dict:
    """The smallest variant of `start` (an `evaluate` result) found greedily that keeps its verdict."""
    tol, device = tolerances_of(summary), "cpu"
    target = start["verdict"]
    state, tries = dict(start), 0
    progress = True
    while progress and tries < max_steps:
        progress = False
        for what, case, inputs in problem_of(state["case"]).shrink_steps(state):
            tries += 1
            trial = evaluate(case, inputs, spec, device, tol, start.get("impl"), start.get("mode"))
            if trial["verdict"] == target:
                log(f"{what}: {dims(case)}, still {target}")
                state, progress = trial, True
                break
            if tries >= max_steps:
                break
    state["note"] = problem_of(state["case"]).shrink_note(state["case"], state["inputs"])
    return state


def dims(case: Case) -> str:
    """The case's shape as reports name it (its kind's: N x K (x d1 ...), a linear-CE case's D)."""
    return problem_of(case).dims(case)


# --- writing -------------------------------------------------------------------------------


def _hello(summary: dict, record: Result) -> dict:
    """The hello of the result's backend in summary.json ({} where it is not there)."""
    return next((b for b in summary.get("backends", []) if b.get("name") == record.backend), {})


def numerics_of(summary: dict, record: Result) -> dict[str, str] | None:
    """The numerics variables (environment.NUMERICS_ENV) the result's worker ran under: its hello's,
    else the run's fingerprint (what the run gave its workers; a run from before workers said),
    None where neither is recorded."""
    recorded = _hello(summary, record).get("numerics_env")
    if recorded is None:
        recorded = (summary.get("environment") or {}).get("numerics_env")
    return None if recorded is None else {str(k): str(v) for k, v in recorded.items()}


def numerics_prelude(numerics: dict[str, str] | None) -> str:
    """A script's first lines: `numerics` set in os.environ (the other NUMERICS_ENV variables
    unset) before NumPy and the framework are imported; None sets nothing."""
    if numerics is None:
        env = "None"
    else:
        env = "{\n" + "".join(f"    {json.dumps(k)}: {json.dumps(v)},\n" for k, v in sorted(numerics.items())) + "}"
    names = "(" + textwrap.fill(", ".join(json.dumps(k) for k in NUMERICS_ENV), 96, subsequent_indent=" " * 18) + ")"
    text = (TEMPLATES / "_numerics.py.in").read_text()
    return text.replace("__NUMERICS_ENV__", env).replace("__NUMERICS_NAMES__", names)


def write(folder: Path, record: Result, inputs, case: Case, ref, suffix: str = "",
          spec: str | None = None, numerics: dict[str, str] | None = None) -> tuple[Path, Path]:
    """Write <folder>/<id><suffix>.npz and .py for `record` on these inputs (its kind's files); the
    script sets the numerics variables `numerics` (numerics_of the run's summary) first."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    name = result_id(record) + suffix
    return problem_of(case).write_repro(folder, name, record, inputs, case, ref, bool(suffix), spec,
                                        numerics_prelude(numerics))


def write_script(folder: Path, name: str, record: Result, case: Case, shrunk: bool, spec: str | None, prelude: str,
                 what: str, template: Path, arrays: dict[str, np.ndarray], ref, outputs: tuple[str, ...],
                 meta: dict | None = None) -> tuple[Path, Path]:
    """A kind's repro files whose script is a template run through xentcheck's registry: the .npz
    holds `arrays`, the reference's `outputs` (as ref_<name>, float64) and the result's metadata
    (`meta` adds to it); the .py is a docstring naming `what` case it is, `prelude`, then `template`
    with __NAME__ and __SPEC__ filled in."""
    info = {"result_id": name, "case_id": case.id, "recorded_case_id": record.case_id, **(meta or {}),
            "backend": record.backend, "impl": record.impl or "", "mode": record.mode or "",
            "device": record.device or "cpu", "verdict": record.recorded_verdict,
            "reasons": record.reasons or [], "spec": spec or record.backend}
    with np.errstate(over="ignore"):
        refs = {f"ref_{k}": np.asarray(ref.get(k), dtype=np.float64) for k in outputs}
    _savez(folder / f"{name}.npz", **arrays, **refs, meta=np.array(json.dumps(info)))
    doc = (f'"""Reproduce {name}: {record.backend} ({info["impl"]}) on {what} case {record.case_id}'
           f'{" (shrunk to " + case.id + ")" if shrunk else ""}.\n\n'
           f'Recorded verdict: {info["verdict"]}. Run: python {name}.py\n"""\n')
    script = doc + prelude + "\n" + template.read_text().replace("__NAME__", name).replace("__SPEC__", info["spec"])
    (folder / f"{name}.py").write_text(script)
    return folder / f"{name}.npz", folder / f"{name}.py"


def _savez(path: Path, **arrays: np.ndarray) -> None:
    """np.savez_compressed at zlib level 1 instead of 6: the float64 reference's random low bits
    hardly compress at any level, and level 6 took most of the time of writing a run's repro/
    (the run waits for it). np.load reads either."""
    import zipfile
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for key, arr in arrays.items():
            with zf.open(f"{key}.npy", "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asanyarray(arr), allow_pickle=False)


def _semantics(summary: dict, record: Result) -> str:
    """How the result's API reads options (its backend's hello in summary.json lists its variants)."""
    return next((v.get("semantics", "plain") for v in _hello(summary, record).get("variants", [])
                 if v.get("impl") == record.impl and v.get("mode") == record.mode), "plain")


def write_all(out_dir: Path, records: list[Result], seed: int, summary: dict | None = None) -> list[Path]:
    """repro/<id>.npz and .py for every bad result of a run (known differences excluded)."""
    specs = specs_by_name(summary or {})
    written = []
    for r in records:
        if r.verdict not in BAD:
            continue
        case = Case.from_id(str(r.case_id), r.inputs_file)
        inputs = make_inputs(case, seed if r.seed is None else r.seed)
        ref = problem_of(case).reference(case, inputs, _semantics(summary or {}, r))
        written.append(write(Path(out_dir) / "repro", r, inputs, case, ref, spec=specs.get(str(r.backend)),
                             numerics=numerics_of(summary or {}, r))[1])
    return written
