"""Reports of linear-CE results: report.md's largest-error tables, report.html's findings and
largest errors, and junit.xml's failure messages name loss, dh, dW and db where a plain result
has its loss and gradient."""

import xml.etree.ElementTree as ET

import numpy as np

from tests.helpers.report_records import context, record
from xentcheck.core.cases import Case, make_inputs
from xentcheck.core.evaluate import Subject, VariantOutput, evaluate
from xentcheck.core.records import Result
from xentcheck.core.tolerances import Tolerances
from xentcheck.problems.linear.reference import linear_reference
from xentcheck.reports import html, junit, markdown
from xentcheck.reports import summary as summary_report

CASE = "scale1e+0_float32_32x100_lin16_index_mean_opt-b"


def linear_record(backend: str, wrong: str | None = None) -> Result:
    """The reference rounded to float32, with `wrong` (dh, dw or db) off by 1e-3 relative."""
    case = Case.from_id(CASE)
    inputs = make_inputs(case, 0)
    ref = linear_reference(case, inputs, "plain")
    f32 = lambda a: np.asarray(a, dtype=np.float64).astype(np.float32)  # noqa: E731
    grads = {k: f32(ref.get(k)) for k in ("dh", "dw", "db")}
    if wrong:
        grads[wrong] = grads[wrong] * np.float32(1.001)
    out = VariantOutput("ok", inputs_modified=[], loss=f32(ref.loss), grads=grads)
    subject = Subject(backend=backend, impl="fused", mode="eager", device="cpu", seed=0, backend_version="1.0")
    rec = evaluate(case, subject, out, Tolerances(), reference=ref)
    rec.api = None
    return rec


def test_linear_results_show_dh_dw_db_in_every_report():
    records = [linear_record("exact"), linear_record("bad-dw", "dw"), linear_record("bad-db", "db"),
               record("scale1e+0_float32_16x10_index_mean", "exact")]
    assert [r.verdict for r in records] == ["pass", "fail", "fail", "pass"]
    summary = summary_report.build(records, context(["exact", "bad-dw", "bad-db"]))
    for g in ("dh", "dw", "db"):
        assert {w["backend"] for w in summary[f"worst_{g}"]} == {"exact", "bad-dw", "bad-db"}
    worst_dw = {w["backend"]: w["rel_err"] for w in summary["worst_dw"]}
    assert worst_dw["bad-dw"] > 5e-4 > 1e-6 > worst_dw["exact"]

    md = markdown.render(summary, records)
    for title in ("gradient", "dh (gradient of h)", "dW (gradient of W)", "db (gradient of b)", "loss"):
        assert f"## Largest {title} errors per backend and dtype" in md, title
    dw_table = md.split("## Largest dW (gradient of W) errors")[1].split("## ")[0]
    assert f"| bad-dw | float32 | `{CASE.replace('_', chr(92) + '_')}` | fail |" in dw_table, dw_table

    rows = html.largest_errors(records)
    outputs = {(r["output"], r["backend"]) for r in rows}
    assert {("dW (gradient of W)", "bad-dw"), ("db (gradient of b)", "bad-db"),
            ("dh (gradient of h)", "exact"), ("gradient", "exact"), ("loss", "exact")} <= outputs
    n_bad, found = html.findings(records, {}, "xentcheck")
    assert n_bad == 2 and all(f["excess"].endswith("x") and float(f["excess"][:-1]) > 1 for f in found), found

    root = ET.fromstring(junit.render(records, summary))
    msgs = {tc.get("classname").split(".")[1]: tc.find("failure").get("message")
            for tc in root.iter("testcase") if tc.find("failure") is not None}
    assert msgs["bad-dw"].startswith("dW: greatest absolute / relative / ULP difference"), msgs
    assert msgs["bad-db"].startswith("db: greatest"), msgs


def test_the_html_report_blames_a_backend_for_each_linear_gradient():
    from xentcheck.reports import blame

    records = [linear_record("exact"), linear_record("bad-dw", "dw"), linear_record("bad-db", "db")]
    summary = summary_report.build(records, context(["exact", "bad-dw", "bad-db"]))
    page = html.render(summary, records, matrix=blame.build(records))
    assert "dW (gradient of W): bad-dw is furthest from the reference" in page
    assert "db (gradient of b): bad-db is furthest from the reference" in page


def test_the_results_schema_describes_a_linear_record():
    """results.schema.json: a linear-CE line's dh, dw, db (and d) are described metrics, and a passing
    linear line must carry dh and dw as a plain one must carry grad."""
    import json

    import jsonschema

    from tests.conftest import ROOT
    validator = jsonschema.Draft202012Validator(json.loads((ROOT / "reports/schemas/results.schema.json").read_text()))
    rec = json.loads(json.dumps(linear_record("exact").to_dict()))  # as results.jsonl holds it
    assert rec["verdict"] == "pass" and {"dh", "dw", "db", "d"} <= set(rec) and "grad" not in rec
    assert list(validator.iter_errors(rec)) == []
    assert [e.message for e in validator.iter_errors({**rec, "dw": {"max_abs_err": "big"}})]  # dw's metrics typed
    no_dw = {k: v for k, v in rec.items() if k != "dw"}
    assert [e.message for e in validator.iter_errors(no_dw)] == ["'dw' is a required property"]
    plain = json.loads(json.dumps(record("scale1e+0_float32_16x10_index_mean", "exact").to_dict()))
    assert list(validator.iter_errors(plain)) == []
    assert [e.message for e in validator.iter_errors({k: v for k, v in plain.items() if k != "grad"})] == \
        ["'grad' is a required property"]
