"""junit.xml: one testcase per result, grouped by backend and dtype, failure messages with the numbers."""

import xml.etree.ElementTree as ET

from tests.helpers.report_records import CASES, record, suite
from xentcheck.reports import junit
from xentcheck.reports import summary as summary_report

EVIL = "<script>alert(1)</script>"


def _xml(records, ctx):
    return ET.fromstring(junit.render(records, summary_report.build(records, ctx)))


def test_one_testcase_per_result_with_counts():
    records, ctx = suite(EVIL)
    root = _xml(records, ctx)
    cases = root.findall(".//testcase")
    assert len(cases) == len(records)
    assert {c.get("name") for c in cases} == set(CASES)
    assert int(root.get("tests")) == len(records)
    assert int(root.get("failures")) == sum(r.verdict in ("fail", "nonfinite") for r in records)
    assert int(root.get("errors")) == sum(r.verdict == "error" for r in records) == 1
    assert len(root.findall("testsuite")) == 3


def test_classname_groups_by_backend_impl_mode_dtype():
    r = record(CASES[0], "torch", impl="F.cross_entropy")
    assert junit.classname(r) == "xentcheck.torch.F_cross_entropy.eager.float32"


def test_failure_message_names_greatest_differences_index_and_allowed():
    r = record("neartie_float64_16x10_onehot_none", "sloppy", 40.0)
    assert r.verdict == "fail"
    root = _xml([r], suite()[1])
    failure = root.find(".//failure")
    msg = failure.get("message")
    assert "greatest absolute / relative / ULP difference" in msg and "at index [" in msg and "allowed" in msg
    # the ULP figure is the one the record measured
    assert f"{r.metrics['grad'].ulp_err:.3g}" in msg or f"{r.metrics['loss'].ulp_err:.3g}" in msg
    assert "repro: xentcheck run --backends sloppy --case neartie_float64_16x10_onehot_none --seed 0" in failure.text


def test_hostile_strings_stay_text_and_control_characters_are_dropped():
    records, ctx = suite(EVIL + "\x00\x1b")
    text = junit.render(records, summary_report.build(records, ctx))
    assert "<script>" not in text and "<b>" not in text
    root = ET.fromstring(text)  # still well-formed XML
    err = root.find(".//error")
    assert EVIL in err.get("message") and "<b>bold</b>" in err.get("message")
    assert all("\x00" not in (s.get("name") or "") for s in root.iter())
