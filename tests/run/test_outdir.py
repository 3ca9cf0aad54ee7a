"""No output is lost: run, fuzz, bench and merge refuse a folder holding xentcheck output (a run, a
campaign, timings), in one line naming the way out, and leave it byte for byte as it was;
--overwrite replaces it and keeps the user's other files (xentcheck.run.outdir)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import run_cli
from xentcheck.cli import main
from xentcheck.run import outdir

QUICK_BENCH = ("--backends", "numpy", "--shapes", "4x8", "--min-block", "0.001", "--blocks", "3", "--no-progress")
WRITERS = {  # each command as it would write a new output into --out
    "run": ("run", "--backends", "numpy", "--cases", "1", "--no-progress"),
    "fuzz": ("fuzz", "--backends", "numpy", "--cases", "1", "--no-progress"),
    "bench": ("bench", *QUICK_BENCH),
}


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> dict[str, Path]:
    """A real finished run, campaign and bench output, each the smallest the command makes."""
    base = tmp_path_factory.mktemp("outputs")
    made = {}
    for kind, args in WRITERS.items():
        res = run_cli(*args, "--out", str(base / kind), timeout=300)
        assert res.returncode == 0, res.stderr
        made[kind] = base / kind
    return made


def tree(folder: Path) -> dict[str, tuple]:
    """Every file's and folder's bytes (a digest) and mtime below `folder`, the folder's own mtime too."""
    state: dict[str, tuple] = {".": ("dir", folder.stat().st_mtime_ns)}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = Path(root) / name
            digest = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
            state[str(path.relative_to(folder))] = (digest, path.stat().st_mtime_ns)
    return state


def refused(capsys, args: list[str]) -> str:
    """The one stderr line of a command that must exit 2."""
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("xentcheck: error: "), err
    return err


# (command, folder kind, what the line must say): the way out the command offers for that folder
PAIRS = [
    ("run", "run", "already holds a finished run: give another --out, or --overwrite to replace it"),
    ("run", "fuzz", "already holds a fuzz campaign: give another --out, or --overwrite to replace it"),
    ("run", "bench", "already holds timings of xentcheck bench: give another --out, or --overwrite"),
    ("fuzz", "run", "already holds a finished run: give another --out, or --overwrite to replace it"),
    ("fuzz", "fuzz", "already holds a fuzz campaign: continue it with --resume {dir}, give another --out, or --overwrite"),
    ("fuzz", "bench", "already holds timings of xentcheck bench: give another --out, or --overwrite"),
    ("bench", "run", "already holds a finished run: give another --out, or --overwrite to replace it"),
    ("bench", "fuzz", "already holds a fuzz campaign: give another --out, or --overwrite to replace it"),
    ("bench", "bench", "already holds timings of xentcheck bench: give another --out, or --overwrite"),
]


@pytest.mark.parametrize("command, kind, message", PAIRS, ids=[f"{c}-into-{k}" for c, k, _ in PAIRS])
def test_a_command_refuses_a_folder_holding_output_and_leaves_it_as_it_was(outputs, capsys, command, kind, message):
    folder = outputs[kind]
    before = tree(folder)
    err = refused(capsys, [*WRITERS[command], "--out", str(folder)])
    assert message.format(dir=folder) in err
    assert tree(folder) == before


def test_the_linear_bench_and_merge_refuse_too(outputs, capsys, tmp_path):
    before = tree(outputs["run"])
    err = refused(capsys, ["bench", "--linear-shapes", "2x3x4", "--out", str(outputs["run"])])
    assert "already holds a finished run" in err and tree(outputs["run"]) == before
    before = tree(outputs["fuzz"])
    err = refused(capsys, ["merge", str(outputs["fuzz"]), str(outputs["run"])])
    assert "already holds a fuzz campaign: give another OUT, or --overwrite" in err and tree(outputs["fuzz"]) == before


def test_an_unfinished_run_is_refused_naming_resume(outputs, capsys, tmp_path):
    killed, interrupted = tmp_path / "killed", tmp_path / "interrupted"
    for folder in (killed, interrupted):
        shutil.copytree(outputs["run"], folder)
    (killed / "summary.json").unlink()  # SIGKILL: no reports yet
    summary = json.loads((interrupted / "summary.json").read_text())
    (interrupted / "summary.json").write_text(json.dumps({**summary, "interrupted": True}))  # Ctrl-C
    for folder in (killed, interrupted):
        before = tree(folder)
        err = refused(capsys, [*WRITERS["run"], "--out", str(folder)])
        assert f"already holds an unfinished run: finish it with --resume {folder}, give another --out" in err
        assert tree(folder) == before
    err = refused(capsys, ["run", "--resume", str(killed), "--overwrite"])
    assert "--overwrite cannot be combined with it" in err


def test_a_folder_of_other_files_is_refused_even_with_overwrite(capsys, tmp_path):
    (tmp_path / "notes.txt").write_text("mine\n")
    (tmp_path / "report.md").write_text("my own report\n")  # a name xentcheck writes, but no xentcheck output
    before = tree(tmp_path)
    for extra in ([], ["--overwrite"]):
        err = refused(capsys, [*WRITERS["run"], "--out", str(tmp_path), *extra])
        assert f"{tmp_path} holds files that are not xentcheck output (notes.txt, report.md): give a new or " \
               "empty folder as --out" in err
    assert tree(tmp_path) == before


def test_what_a_folder_holds(tmp_path, outputs):
    assert outdir.inspect(tmp_path / "missing").empty
    (tmp_path / ".gitkeep").write_text("")  # hidden entries are not counted
    assert outdir.check(tmp_path, "run").empty
    (tmp_path / "logs").mkdir()  # a bench killed before it wrote timing.json
    held = outdir.inspect(tmp_path)
    assert (held.kinds, held.ours, held.other) == ((), ("logs",), ())
    with pytest.raises(outdir.OccupiedError, match=r"holds leftovers of xentcheck output \(logs\): give another"):
        outdir.check(tmp_path, "bench")
    assert outdir.clear(outdir.check(tmp_path, "bench", overwrite=True)) == f"replacing leftovers of xentcheck " \
                                                                                f"output (logs) in {tmp_path}"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".gitkeep"]
    (tmp_path / "report.md").write_text("mine\n")  # a name xentcheck writes, alone: the user's
    held = outdir.inspect(tmp_path)
    assert (held.kinds, held.ours, held.other) == ((), (), ("report.md",))
    # every entry a real output holds is one its kind is known to write (what --overwrite removes)
    for kind, name in (("run", outdir.RUN), ("fuzz", outdir.CAMPAIGN), ("bench", outdir.BENCH)):
        held = outdir.inspect(outputs[kind])
        assert held.kinds == (name,) and held.other == ()
        assert set(held.ours) == {p.name for p in outputs[kind].iterdir()}
    assert outdir.inspect(outputs["run"]).finished


def test_overwrite_replaces_another_kind_and_keeps_other_files(outputs, tmp_path):
    """Each command with --overwrite into a real output of another kind, holding a file of the user's."""
    for command, kind in (("run", "fuzz"), ("fuzz", "bench"), ("bench", "run")):
        folder = tmp_path / f"{command}-over-{kind}"
        shutil.copytree(outputs[kind], folder)
        (folder / "notes.txt").write_text("mine\n")
        res = run_cli(*WRITERS[command], "--out", str(folder), "--overwrite", timeout=300)
        assert res.returncode == 0, res.stderr
        assert f"xentcheck: replacing {outdir.inspect(outputs[kind]).describe()} in {folder} (kept what is not " \
               "xentcheck output: notes.txt)" in res.stderr
        held = outdir.inspect(folder)
        assert held.kinds == ({"run": "run", "fuzz": "campaign", "bench": "bench"}[command],), held
        assert held.other == ("notes.txt",) and (folder / "notes.txt").read_text() == "mine\n"
        # nothing of the replaced output is left: every entry is one the new kind writes, from this command
        assert set(held.ours) == {p.name for p in outputs[command].iterdir()}
    run_folder = tmp_path / "fuzz-over-bench"  # now a campaign: the run's report.md came from fuzz
    assert (run_folder / "report.md").read_text().startswith("# xentcheck fuzz")
    report = (tmp_path / "run-over-fuzz" / "report.md").read_text()
    assert not report.startswith("# xentcheck fuzz") and len((tmp_path / "run-over-fuzz" / "results.jsonl")
                                                                .read_text().splitlines()) == 1


def test_overwrite_replaces_its_own_kind(outputs, tmp_path):
    folder = tmp_path / "again"
    shutil.copytree(outputs["run"], folder)
    stale = folder / "repro" / "old.py"  # a file of the previous run that this one would not write
    stale.parent.mkdir()
    stale.write_text("old\n")
    res = run_cli(*WRITERS["run"], "--seed", "9", "--out", str(folder), "--overwrite", timeout=300)
    assert res.returncode == 0, res.stderr
    assert not stale.exists() and json.loads((folder / "run.json").read_text())["seed"] == 9
    res = run_cli("merge", str(folder), str(outputs["run"]), "--overwrite", timeout=300)
    assert res.returncode == 0, res.stderr
    assert [json.loads(line)["seed"] for line in (folder / "results.jsonl").read_text().splitlines()] == [0]


def test_verify_refuses_an_occupied_out_or_replaces_it(outputs, tmp_path):
    import numpy as np

    import xentcheck

    before = tree(outputs["fuzz"])
    with pytest.raises(ValueError, match="already holds a fuzz campaign: give another --out, or --overwrite"):
        xentcheck.verify("numpy", cases=1, out=outputs["fuzz"])
    assert tree(outputs["fuzz"]) == before
    folder = tmp_path / "api"
    shutil.copytree(outputs["run"], folder)
    arrays = {"logits": np.array([[0.0, 1.0, 2.0]], np.float32), "labels": np.array([2])}  # written to inputs/
    result = xentcheck.verify("numpy", inputs=arrays, out=folder, overwrite=True)
    assert [r.verdict for r in result.records] == ["pass"] and (folder / "inputs" / "arrays1.npz").is_file()
    assert [json.loads(line)["case_id"] for line in (folder / "results.jsonl").read_text().splitlines()] == \
        [result.records[0].case_id]
