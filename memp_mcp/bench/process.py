"""What a benchmark reads of a server process it started, from Linux's /proc: which process it is, the
CPU time it has used and its peak resident memory. Elsewhere these read as None, and the figures
that need them are left out.

A server is found by a marker in its environment (a variable set to a value unique to the run):
the environment is inherited, so a server started through a wrapper (a shell script, `uv run`)
is found too, as the marked process none of whose children is marked.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

MARKER_VARIABLE = "MEMP_BENCH_SERVER"

_PROC = Path("/proc")


def cpu_seconds_of_stat(stat_line: str, ticks_per_second: float) -> float:
    """User plus system CPU seconds from a /proc/<pid>/stat line (all of the process's threads).

    The command name (field 2) is in parentheses and may hold spaces and parentheses itself, so the
    fields are counted from the last ')'. utime and stime are fields 14 and 15.
    """
    after_name = stat_line[stat_line.rindex(")") + 1 :].split()
    # after_name[0] is field 3 (the state), so field n is after_name[n - 3].
    return (int(after_name[11]) + int(after_name[12])) / ticks_per_second


def cpu_seconds(pid: int | None) -> float | None:
    if pid is None:
        return None
    try:
        line = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return cpu_seconds_of_stat(line, os.sysconf("SC_CLK_TCK"))


def peak_rss_mb(pid: int | None) -> float | None:
    """The process's peak resident set (VmHWM) in MiB."""
    if pid is None:
        return None
    try:
        for line in (_PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def server_pid(marker: str) -> int | None:
    """The pid of the process started with MARKER_VARIABLE=`marker` (see the module's docstring)."""
    if not _PROC.is_dir():
        return None
    wanted = f"{MARKER_VARIABLE}={marker}".encode()
    parents: dict[int, int] = {}
    for entry in _PROC.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if wanted not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            parents[int(entry.name)] = _parent_pid((entry / "stat").read_text())
        except (OSError, ValueError):
            continue
    return innermost(parents)


def innermost(parents: Mapping[int, int]) -> int | None:
    """Of marked processes (pid -> parent pid), the one that is no marked process's parent; with
    several such (not expected), the highest pid."""
    leaves = [pid for pid in parents if pid not in set(parents.values())]
    return max(leaves) if leaves else None


def _parent_pid(stat_line: str) -> int:
    return int(stat_line[stat_line.rindex(")") + 1 :].split()[1])
