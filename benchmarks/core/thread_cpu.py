"""Where a served request's CPU goes: a server's threads sampled from /proc around a window.

`take_snapshot` reads every thread of the server's process tree (/proc/PID/task/TID/stat:
utime + stime and the name) and the machine's /proc/stat; `breakdown` turns two snapshots
into CPU ms per request per thread role:
  event loop    the worker process's main thread (tid == pid), where asyncio runs;
  inference     Python threads named hf-runtime-infer* (the batcher's executor; another
                server's own prefixes can be given: Infinity's batch handler threads);
  compute pool  the worker's native threads, the ones Python did not start: ONNX Runtime's
                and OpenMP's pools, the tokenizer's (they cannot be told apart cheaply);
  other         the worker's other Python threads and every other process of the tree
                (BentoML's arbiter, ...);
and the machine's idle share over the window. Which threads Python started comes from the
files peers/thread_names/sitecustomize.py writes in the server (one per thread: its name);
without them every thread but the main one counts as compute pool, except those whose
15-character kernel name starts like the inference prefix.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROC = Path("/proc")
INFERENCE_PREFIXES = ("hf-runtime-infer",)
COMM_LENGTH = 15  # the kernel keeps this much of a thread's name
# The process of a `bentoml serve` tree that serves requests (its arbiter forks it).
WORKER_MARKER = b"_bentoml_impl.worker"
ROLES = ("event_loop", "inference", "compute_pool", "other")


@dataclass(frozen=True)
class Snapshot:
    worker: int
    threads: dict[tuple[int, int], tuple[str, int]]  # (pid, tid) -> (kernel name, ticks)
    python_names: dict[tuple[int, int], str] = field(default_factory=dict)
    machine: tuple[int, int] = (0, 0)  # (idle + iowait, all) ticks from /proc/stat


def _stat_fields(path: Path) -> tuple[str, list[str]] | None:
    """The name and the fields after it; None when the process or thread ended."""
    try:
        text = path.read_text()
    except OSError:
        return None
    # The name (field 2) may hold spaces and parentheses; the fields after the last ")" do not.
    head, _, rest = text.rpartition(")")
    return head.partition("(")[2], rest.split()


def tree_pids(root: int, proc: Path = PROC) -> list[int]:
    """`root` and every live descendant."""
    children: dict[int, list[int]] = {}
    for stat in proc.glob("[0-9]*/stat"):
        parsed = _stat_fields(stat)
        if parsed is not None:  # after ")": [0] state, [1] ppid
            children.setdefault(int(parsed[1][1]), []).append(int(stat.parent.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        if (proc / str(pid)).is_dir():
            out.append(pid)
        todo += children.get(pid, [])
    return out


def find_worker(pids: list[int], proc: Path = PROC) -> int:
    """The BentoML worker among `pids` (by its command line), else the first (the root)."""
    for pid in pids:
        try:
            if WORKER_MARKER in (proc / str(pid) / "cmdline").read_bytes():
                return pid
        except OSError:
            continue
    return pids[0] if pids else -1


def machine_ticks(proc: Path = PROC) -> tuple[int, int]:
    """(idle + iowait, all) jiffies of every CPU so far."""
    try:
        first = (proc / "stat").read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return 0, 0
    values = [int(v) for v in first[1:9]]  # user nice system idle iowait irq softirq steal
    return values[3] + values[4], sum(values)


def python_thread_names(names_dir: Path | None, pids: list[int]) -> dict[tuple[int, int], str]:
    """(pid, tid) -> name of each thread Python started in `pids`, from `<pid>-<tid>` files."""
    if names_dir is None or not names_dir.is_dir():
        return {}
    wanted, out = set(pids), {}
    for path in names_dir.iterdir():
        pid, _, tid = path.name.partition("-")
        if pid.isdigit() and tid.isdigit() and int(pid) in wanted:
            out[int(pid), int(tid)] = path.read_text(errors="replace")
    return out


def take_snapshot(root: int, names_dir: Path | None = None, proc: Path = PROC) -> Snapshot:
    pids = tree_pids(root, proc)
    threads = {}
    for pid in pids:
        for stat in (proc / str(pid) / "task").glob("[0-9]*/stat"):
            parsed = _stat_fields(stat)
            if parsed is not None:  # after ")": [11] utime, [12] stime
                name, fields = parsed
                threads[pid, int(stat.parent.name)] = (name, int(fields[11]) + int(fields[12]))
    return Snapshot(
        find_worker(pids, proc), threads, python_thread_names(names_dir, pids), machine_ticks(proc)
    )


def role(
    snapshot: Snapshot,
    pid: int,
    tid: int,
    kernel_name: str,
    inference_prefixes: tuple[str, ...] = INFERENCE_PREFIXES,
) -> str:
    if pid != snapshot.worker:
        return "other"
    if tid == pid:
        return "event_loop"
    name = snapshot.python_names.get((pid, tid))
    if name is None:  # not started by Python (or no names recorded): by the kernel's name
        truncated = tuple(prefix[:COMM_LENGTH] for prefix in inference_prefixes)
        return "inference" if kernel_name.startswith(truncated) else "compute_pool"
    return "inference" if name.startswith(inference_prefixes) else "other"


def breakdown(
    before: Snapshot,
    after: Snapshot,
    requests: int,
    *,
    client_ms_per_request: float | None = None,
    ticks_per_s: int | None = None,
    inference_prefixes: tuple[str, ...] = INFERENCE_PREFIXES,
) -> dict[str, Any]:
    """CPU ms per request per role (and in all) between two snapshots, the client's, the
    machine's idle % over the window and how many threads of each role used CPU."""
    tick_ms = 1000 / (ticks_per_s or os.sysconf("SC_CLK_TCK"))
    used = dict.fromkeys(ROLES, 0)
    busy = dict.fromkeys(ROLES, 0)
    for key, (name, ticks) in after.threads.items():
        spent = ticks - before.threads.get(key, (name, 0))[1]
        if spent > 0:
            which = role(after, key[0], key[1], name, inference_prefixes)
            used[which] += spent
            busy[which] += 1
    per_request = max(1, requests)
    out: dict[str, Any] = {
        f"{name}_ms": round(used[name] * tick_ms / per_request, 3) for name in ROLES
    }
    out["server_ms"] = round(sum(used.values()) * tick_ms / per_request, 3)
    out["client_ms"] = client_ms_per_request
    idle, total = (a - b for a, b in zip(after.machine, before.machine, strict=True))
    out["idle_pct"] = round(100 * idle / total, 1) if total > 0 else None
    out["threads_busy"] = busy
    out["requests"] = requests
    return out
