"""Between cases a worker past its resident-set limit asks the backend to drop its compiled
programs (xentcheck.run.memory.release_if_large, Backend.release); the results stay the same."""

from __future__ import annotations

import json

import pytest

from tests.conftest import require, run_here
from xentcheck.run import memory


class _Toy:
    def __init__(self, fails: bool = False):
        self.released, self.fails = 0, fails

    def release(self):
        self.released += 1
        if self.fails:
            raise RuntimeError("cannot")


def test_release_happens_only_past_the_limit_and_a_failing_release_is_survived(capsys):
    toy = _Toy()
    here = memory.current_rss() or 0
    assert memory.release_if_large(toy, limit=here * 4) is None and toy.released == 0
    before = memory.release_if_large(toy, limit=0)
    assert toy.released == 1 and before is not None and before > 0
    broken = _Toy(fails=True)
    assert memory.release_if_large(broken, limit=0) is None and broken.released == 1
    assert "RuntimeError in release(): cannot" in capsys.readouterr().err


@pytest.mark.parametrize("backend,module", [("jax", "jax")])
def test_a_worker_that_releases_after_every_case_gives_the_same_results(tmp_path, backend, module):
    require(module)

    def run(name: str, env: dict) -> list[dict]:
        out = tmp_path / name
        proc = run_here("run", "--backends", backend, "--dtypes", "float32", "--cases", "3", "--out", str(out),
                        "--no-progress", env=env)
        assert proc.returncode in (0, 1), proc.stderr
        recs = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
        for r in recs:
            r.pop("timing", None)
        return recs

    kept = run("kept", {})
    released = run("released", {"XENTCHECK_RELEASE_BYTES": "0"})
    assert kept == released and {r["verdict"] for r in kept} <= {"pass", "fail", "nonfinite"}
    log = (tmp_path / "released" / "logs" / "worker-0.log").read_text()
    assert log.count("xentcheck worker: released compiled programs") == 3
