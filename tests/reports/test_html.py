"""report.html: self-contained, escaped, with the summary, pass rates, findings and plots."""

import functools
import re

from tests.helpers.report_records import suite
from xentcheck.reports import html
from xentcheck.reports import summary as summary_report

EVIL = "<script>alert(1)</script>"


@functools.cache
def _page(evil=EVIL):
    records, ctx = suite(evil)
    return html.render(summary_report.build(records, ctx), records), records


def test_backend_and_exception_strings_are_escaped():
    page, _ = _page()
    assert EVIL not in page and "<b>bold</b>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;b&gt;bold&lt;/b&gt;" in page
    # the page's only script is its own
    assert len(re.findall(r"<script>", page)) == 1


def test_self_contained_no_network_references():
    page, _ = _page()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "@import" not in page and "url(http" not in page
    imgs = re.findall(r'<img src="([^"]+)"', page)
    assert len(imgs) >= 3 and all(i.startswith("data:image/png;base64,") for i in imgs)


def test_summary_pass_rates_findings_and_repro_hints():
    page, records = _page()
    assert "DISCREPANCIES FOUND" in page
    assert "Pass rates" in page and "Discrepancy matrix" in page and "Timings" in page
    bad = [r for r in records if r.verdict not in ("pass", "skipped")]
    for r in bad:
        assert r.case_id in page
    assert "xentcheck run --backends sloppy" in page or "xentcheck run --backends exact" in page or bad
    assert "xentcheck run --backends &lt;script&gt;" in page  # repro of the hostile backend, escaped
    assert "furthest from the reference" in page


def test_all_passing_run_says_ok_and_dollar_in_names_does_not_break_plots():
    from tests.helpers.report_records import CASES, context, record

    records = [record(c, "a$b$", 0.0) for c in CASES]
    page = html.render(summary_report.build(records, context(["a$b$"])), records)
    assert "OK: every result within tolerance" in page and "a$b$" in page


def test_every_report_renders_when_nothing_was_compared(tmp_path):
    from tests.helpers.report_records import CASES, context, error_record
    from xentcheck.reports.write_all import write_all

    for records in ([], [error_record(CASES[0], "broken", "ImportError: no module")]):
        summary = write_all(tmp_path, records, context(["broken"]))
        page = (tmp_path / "report.html").read_text()
        assert "No compared results to plot." in page
        assert (tmp_path / "junit.xml").read_text().count("<testcase") == len(records)
        assert summary["exit_status"] == (1 if records else 0)
