"""A process's descendants and the TCP addresses they listen on, read from Linux's /proc: that a
test's servers bind to loopback only, and that a test leaves no process behind."""

from __future__ import annotations

import ipaddress
import os
import socket
import time
from pathlib import Path

PROC = Path("/proc")


def descendants(pid: int) -> set[int]:
    """Every live process below `pid` (children, grandchildren, ...)."""
    parent = {}
    for stat in PROC.glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # it ended meanwhile
            continue
        parent[int(stat.parent.name)] = int(text.rsplit(")", 1)[1].split()[1])  # the name may hold spaces
    found, frontier = set(), [pid]
    while frontier:
        p = frontier.pop()
        kids = {c for c, pp in parent.items() if pp == p} - found
        found |= kids
        frontier.extend(kids)
    return found


def wait_gone(pids: set[int], timeout: float = 30.0) -> set[int]:
    """Those of `pids` still running after `timeout` seconds (zombies count as gone)."""
    deadline = time.monotonic() + timeout
    while True:
        alive = {p for p in pids if _running(p)}
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.1)


def _running(pid: int) -> bool:
    try:
        return (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def listening(pids: set[int]) -> set[str]:
    """The local addresses of the TCP sockets in state LISTEN that `pids` hold, e.g. "127.0.0.1"."""
    inodes = set()
    for pid in pids:
        try:
            for fd in (PROC / str(pid) / "fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:  # it ended, or is not ours to read
            continue
    found = set()
    for table, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
        for line in (PROC / "net" / table).read_text().splitlines()[1:]:
            cols = line.split()
            if cols[3] == "0A" and cols[9] in inodes:  # 0A: LISTEN
                raw = bytes.fromhex(cols[1].split(":")[0])
                # the kernel writes the address as 32-bit words in host (little-endian) order
                raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
                found.add(socket.inet_ntop(family, raw))
    return found


def is_loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    mapped = getattr(ip, "ipv4_mapped", None)  # ::ffff:127.0.0.1, an IPv6 socket bound to 127.0.0.1
    return (mapped or ip).is_loopback
