"""report.html in a real browser: headless Chromium loads it from disk with the network off,
runs its script, logs no console error, and saves a screenshot (left in the test's tmp dir)."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers.report_records import suite
from xentcheck.reports import html
from xentcheck.reports import summary as summary_report


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


BROWSER = _chromium()
pytestmark = pytest.mark.skipif(BROWSER is None, reason="no Chromium installed (Debian: apt-get install chromium)")

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
         "--proxy-server=127.0.0.1:9", "--enable-logging=stderr", "--v=0"]
CONSOLE_ERRORS = ("Uncaught", "ERROR:CONSOLE", "Failed to load resource", "net::ERR_")


def _browse(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / "profile"
    profile.mkdir(exist_ok=True)
    return subprocess.run([BROWSER, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "HOME": str(tmp_path)})


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    records, ctx = suite()
    path = tmp_path_factory.mktemp("report") / "report.html"
    path.write_text(html.render(summary_report.build(records, ctx), records), encoding="utf-8")
    return path


def test_loads_runs_its_script_and_logs_no_console_error(page, tmp_path):
    done = _browse(tmp_path, "--dump-dom", page.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    assert 'data-report-ready="1"' in done.stdout  # the page's script ran to the end
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in done.stdout  # the hostile name is text in the DOM
    bad = [line for line in done.stderr.splitlines() if any(m in line for m in CONSOLE_ERRORS)]
    assert not bad, bad


def test_screenshot(page, tmp_path):
    shot = tmp_path / "report.png"
    done = _browse(tmp_path, f"--screenshot={shot}", "--window-size=1280,2000", "--hide-scrollbars", page.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 50_000  # a rendered page, not a blank one
