"""Where a run's time goes (issue 30): wall clock, CPU seconds per process, and the per-result
timings of results.jsonl, per backend and mode; JSON under benchmarks/results/.

    python benchmarks/suite_time.py --json benchmarks/results/suite-full-DATE.json -- --suite full --shard 1/6
    python benchmarks/suite_time.py --from RUN_DIR --json FILE     # a finished run's folder alone

The first form runs `python -m xentcheck run ARGS --out OUT` (OUT: --out, default a temporary
folder) and samples /proc every --interval seconds: each process of the run's tree (the parent,
its forked report children, each backend worker by its spec) with its CPU seconds (user +
system, as last seen: a process's last interval before it exits is lost), its largest resident
set and its lifetime; the load average; the tree's largest resident total and the machine's
smallest MemAvailable (whether the run fits the machine's memory). The CPU of the whole tree
is exact (getrusage of the waited children). `--code DIR` runs another checkout's xentcheck
(its PYTHONPATH), for an A/B on the same machine.

From results.jsonl, per backend and per (backend, mode): results; worker seconds (each case's
reply time, `timing.wall_seconds`, counted once per case and backend: it covers every variant,
their property checks, the inputs and the .npz files); `compute_seconds` (each variant's first
call: tracing and compilation included); `properties_seconds` (the property checks' calls); and
`repeat_seconds` (the determinism check's second call of the same variant on the same inputs: the
call without tracing). first call - repeat estimates what tracing and compiling cost.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


PAGE = os.sysconf("SC_PAGE_SIZE")


def _proc(pid: int) -> tuple[int, float, list[str], int] | None:
    """(parent pid, CPU seconds, command line, resident bytes) of a live process, None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # after the command name, which may hold spaces
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / TICK, [c.decode() for c in cmd if c], \
        int(fields[21]) * PAGE


def _available() -> int:
    """MemAvailable of /proc/meminfo, in bytes."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return -1


def _tree(root: int) -> dict[int, tuple[int, float, list[str], int]]:
    """Every live process under root (root included)."""
    procs = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            info = _proc(int(entry))
            if info is not None:
                procs[int(entry)] = info
    keep, changed = {root}, True
    while changed:
        changed = False
        for pid, (ppid, *_) in procs.items():
            if ppid in keep and pid not in keep:
                keep.add(pid)
                changed = True
    return {pid: procs[pid] for pid in keep if pid in procs}


def _role(pid: int, root: int, cmd: list[str], root_cmd: list[str]) -> str:
    if pid == root:
        return "parent"
    if len(cmd) >= 3 and cmd[1].endswith("launch.py"):
        return f"worker:{cmd[2]}"
    return "parent-fork" if cmd == root_cmd else "other:" + " ".join(cmd[:3])


def _cache_state() -> dict:
    """XENTCHECK_COMPILE_CACHE as the run starts: a kept cache (its folder, files and bytes) or none
    (the run compiles everything; its workers share a cache in its scratch folder)."""
    folder = os.environ.get("XENTCHECK_COMPILE_CACHE")
    if not folder:
        return {"kept": False}
    files = [p for p in Path(folder).rglob("*") if p.is_file()] if Path(folder).is_dir() else []
    return {"kept": True, "folder": folder, "files": len(files), "bytes": sum(p.stat().st_size for p in files)}


def profile_run(run_args: list[str], out: Path, code: Path, interval: float) -> dict:
    """Run `xentcheck run` and sample its process tree; returns the processes, the load and the times."""
    env = {**os.environ, "PYTHONPATH": str(code)}
    cmd = [sys.executable, "-m", "xentcheck", "run", *run_args, "--out", str(out), "--no-progress"]
    load = [{"t": 0.0, "loadavg": os.getloadavg()}]
    start = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, cwd=code, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    seen: dict[int, dict] = {}
    root_cmd: list[str] = []
    last_load = start
    # memory: the tree's resident bytes at their largest (summed over its processes in one sample)
    # and the machine's MemAvailable at its smallest, each with when
    memory = {"tree_rss_peak_bytes": 0, "tree_rss_peak_at": 0.0, "available_min_bytes": _available(),
              "available_min_at": 0.0, "available_start_bytes": _available()}
    while proc.poll() is None:
        now = time.monotonic()
        tree = _tree(proc.pid)
        for pid, (_, cpu, pcmd, rss) in tree.items():
            if pid == proc.pid:
                root_cmd = pcmd
            rec = seen.setdefault(pid, {"pid": pid, "cmd": pcmd, "first_seen": round(now - start, 2), "rss_peak_bytes": 0})
            rec.update(cpu_seconds=cpu, last_seen=round(now - start, 2), rss_peak_bytes=max(rec["rss_peak_bytes"], rss))
        total, avail = sum(info[3] for info in tree.values()), _available()
        if total > memory["tree_rss_peak_bytes"]:
            memory.update(tree_rss_peak_bytes=total, tree_rss_peak_at=round(now - start, 1))
        if 0 <= avail < memory["available_min_bytes"]:
            memory.update(available_min_bytes=avail, available_min_at=round(now - start, 1))
        if now - last_load >= 5:
            load.append({"t": round(now - start, 1), "loadavg": os.getloadavg()})
            last_load = now
        time.sleep(interval)
    wall = time.monotonic() - start
    output = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
    load.append({"t": round(wall, 1), "loadavg": os.getloadavg()})
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    processes = []
    for pid, rec in seen.items():
        rec["role"] = _role(pid, proc.pid, rec["cmd"], root_cmd)
        rec["cpu_seconds"] = round(rec["cpu_seconds"], 2)
        rec["cmd"] = " ".join(rec["cmd"])[:200]
        processes.append(rec)
    by_role: dict[str, dict] = defaultdict(lambda: {"processes": 0, "cpu_seconds": 0.0, "rss_peak_bytes": 0})
    for rec in processes:
        r = by_role[rec["role"]]
        r["processes"] += 1
        r["cpu_seconds"] = round(r["cpu_seconds"] + rec["cpu_seconds"], 2)
        r["rss_peak_bytes"] = max(r["rss_peak_bytes"], rec["rss_peak_bytes"])  # its largest process's
    results = out / "results.jsonl"
    last_result = results.stat().st_mtime - (time.time() - (time.monotonic() - start)) if results.exists() else None
    return {"command": " ".join(cmd), "exit_status": proc.returncode, "output_tail": output[-2000:],
            "wall_seconds": round(wall, 1), "cpu_seconds_all": round(usage.ru_utime + usage.ru_stime, 1),
            "last_result_at": None if last_result is None else round(last_result, 1),
            "interval": interval, "load": load, "memory": memory, "by_role": dict(sorted(by_role.items())),
            "processes": sorted(processes, key=lambda r: r["first_seen"])}


def _add(acc: dict, key: str, value: float | None) -> None:
    if value is not None:
        acc[key] = acc.get(key, 0.0) + value


def breakdown(run_dir: Path) -> dict:
    """Per backend and per (backend, mode): results and their recorded seconds (see the module doc)."""
    records = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines() if line.strip()]
    backends: dict[str, dict] = defaultdict(dict)
    modes: dict[str, dict] = defaultdict(dict)
    replies: dict[tuple[str, str], float] = {}
    for r in records:
        b, m, t = r["backend"], f"{r['backend']} {r['mode']}", r.get("timing") or {}
        for acc in (backends[b], modes[m]):
            _add(acc, "results", 1)
            _add(acc, "compute_seconds", t.get("compute_seconds"))
            _add(acc, "properties_seconds", t.get("properties_seconds"))
            if t.get("repeat_seconds") is not None:
                _add(acc, "repeated", 1)
                _add(acc, "repeat_seconds", t.get("repeat_seconds"))
                _add(acc, "first_of_repeated_seconds", t.get("compute_seconds"))
        if "wall_seconds" in t:
            key = (r["case_id"], b)
            replies[key] = max(replies.get(key, 0.0), t["wall_seconds"])
    for (_, b), seconds in replies.items():
        _add(backends[b], "worker_seconds", seconds)
        _add(backends[b], "replies", 1)
    total = {k: round(sum(acc.get(k, 0) for acc in backends.values()), 2)
             for k in ("results", "worker_seconds", "compute_seconds", "properties_seconds")}
    for acc in (*backends.values(), *modes.values()):
        if "repeated" in acc:  # what the first calls cost beyond a second call: tracing, compiling, first touches
            acc["first_minus_repeat_seconds"] = acc["first_of_repeated_seconds"] - acc["repeat_seconds"]
        for k, v in acc.items():
            acc[k] = round(v, 2) if isinstance(v, float) else int(v)
    return {"run_dir": str(run_dir), "results": len(records), "totals": total,
            "backends": dict(sorted(backends.items(), key=lambda kv: -kv[1].get("worker_seconds", 0))),
            "modes": dict(sorted(modes.items(), key=lambda kv: -(kv[1].get("compute_seconds", 0)
                                                                 + kv[1].get("properties_seconds", 0))))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--from", dest="from_dir", help="a finished run's folder: its breakdown only")
    ap.add_argument("--out", help="the run's --out folder (default: a temporary folder, kept)")
    ap.add_argument("--code", default=str(Path(__file__).resolve().parents[1]), help="checkout whose xentcheck runs")
    ap.add_argument("--interval", type=float, default=0.5, help="seconds between samples of /proc")
    ap.add_argument("--label", default="", help="a note stored in the JSON (what this run is)")
    ap.add_argument("--json", required=True, help="where to write the JSON")
    ap.add_argument("run_args", nargs="*", help="after --: the arguments of `xentcheck run`")
    args = ap.parse_args()
    sys.path.insert(0, args.code)
    from xentcheck.run.environment import fingerprint
    data: dict = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "label": args.label,
                  "code": args.code, "uptime_start": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()}
    data["compile_cache"] = _cache_state()
    if args.from_dir:
        run_dir = Path(args.from_dir)
    else:
        run_dir = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="suite-time-"))
        data["run"] = profile_run(args.run_args, run_dir, Path(args.code), args.interval)
        print(f"wall {data['run']['wall_seconds']} s, CPU {data['run']['cpu_seconds_all']} s, "
              f"exit {data['run']['exit_status']}; folder {run_dir}", flush=True)
    data["uptime_end"] = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    data["breakdown"] = breakdown(run_dir)
    data["machine"] = fingerprint()
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(data, indent=1) + "\n")
    print(json.dumps({"totals": data["breakdown"]["totals"],
                      "backends": {b: {k: v.get(k) for k in ("results", "worker_seconds", "compute_seconds",
                                                             "properties_seconds", "first_minus_repeat_seconds")}
                                   for b, v in data["breakdown"]["backends"].items()}}, indent=1))
    print(f"written {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
