"""The soak's parts: steady callers that log every failure, the fault windows that explain them, and a sampler of
each process's RSS, open file descriptors and threads (from /proc)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

GRACE = 3.0  # seconds after a fault's recovery in which a failure is still its doing (a caller's retry in flight)


@dataclass
class Failure:
    at: float  # seconds since the soak began
    kind: str  # which caller
    error: str
    cause: str = ""  # the injected fault that explains it, or "" when none does


@dataclass
class Fault:
    """One injected fault, from when it was made until the cluster served again."""

    what: str
    started: float
    affects: frozenset[str]  # the callers it may fail
    ended: float | None = None

    def explains(self, failure: Failure) -> bool:
        end = self.ended if self.ended is not None else float("inf")
        return failure.kind in self.affects and self.started <= failure.at <= end + GRACE


@dataclass
class Ledger:
    """Every call's outcome and every fault, shared by the threads."""

    began: float = field(default_factory=time.monotonic)
    calls: dict[str, int] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def now(self) -> float:
        return time.monotonic() - self.began

    def record(self, kind: str, error: str | None) -> None:
        with self.lock:
            self.calls[kind] = self.calls.get(kind, 0) + 1
            if error is not None:
                self.failures.append(Failure(self.now(), kind, error))

    def fault(self, what: str, affects: set[str]) -> Fault:
        made = Fault(what, self.now(), frozenset(affects))
        with self.lock:
            self.faults.append(made)
        return made

    def explain(self) -> list[Failure]:
        """Give each failure the fault that explains it; returns those no fault explains."""
        for failure in self.failures:
            failure.cause = next((f.what for f in self.faults if f.explains(failure)), "")
        return [f for f in self.failures if not f.cause]


class Caller(threading.Thread):
    """Calls ``call`` ``rate`` times a second until stopped; an exception or a falsy answer is a failure."""

    def __init__(self, kind: str, call: Callable[[], Any], rate: float, ledger: Ledger, stop: threading.Event):
        super().__init__(name=f"soak-{kind}", daemon=True)
        self.kind, self.call, self.period, self.ledger, self.stop = kind, call, 1.0 / rate, ledger, stop

    def run(self) -> None:
        due = time.monotonic()
        while not self.stop.is_set():
            try:
                error = None if self.call() else "a wrong answer"
            except Exception as err:  # noqa: BLE001 - every failure is logged with its cause, none ends the soak
                error = f"{type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''}"
            self.ledger.record(self.kind, error)
            due += self.period
            # A caller that fell behind (a call that waited out a fault) starts again from now, not in a burst.
            due = max(due, time.monotonic())
            self.stop.wait(due - time.monotonic())


@dataclass(frozen=True)
class Usage:
    rss_mib: float
    fds: int
    threads: int
    anon_mib: float = 0.0  # of the RSS: the heap and stacks (what a leak grows)
    file_mib: float = 0.0  # of the RSS: mapped files (compiled code, etcd's database), which the kernel can drop
    wasm_mib: float = 0.0  # of the anonymous RSS: in wasmtime's reservations (guests' memories, the instance pool)
    thread_names: dict[str, int] = field(default_factory=dict)  # the kernel's name of each thread -> how many


def thread_names(pid: int) -> dict[str, int]:
    """``pid``'s threads counted by the name the kernel knows them by (gRPC's core and Go name theirs; a Python
    thread is its process's name), so a thread count that moves says whose threads moved."""
    names: dict[str, int] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
        except OSError:
            continue  # ended while listed
        names[name] = names.get(name, 0) + 1
    return names


WASM_RESERVATION = 4 << 30  # a linear memory's reservation is at least 4 GiB; nothing else maps that much


def wasm_resident_kib(pid: int) -> int:
    """Resident KiB of ``pid``'s anonymous regions of 4 GiB or more: wasmtime's reservations (each memory's own,
    or the pooling allocator's one for all its slots), so the heap is the anonymous rest. A reservation is split
    into many mappings by the permissions of its slots and guards, so adjacent anonymous mappings are joined into
    regions first."""
    regions: list[list[int]] = []  # [start, end, resident KiB]
    anonymous = False
    try:
        with open(f"/proc/{pid}/smaps") as smaps:
            for line in smaps:
                head = line.split(maxsplit=6)
                if "-" in head[0] and len(head) >= 5 and not head[0].endswith(":"):
                    low, _, high = head[0].partition("-")
                    start, end = int(low, 16), int(high, 16)
                    anonymous = len(head) < 6  # no file behind it
                    if anonymous:
                        if regions and regions[-1][1] == start:
                            regions[-1][1] = end
                        else:
                            regions.append([start, end, 0])
                elif anonymous and head[0] == "Rss:":
                    regions[-1][2] += int(head[1])
    except (OSError, ValueError, IndexError):
        return 0
    return sum(kib for start, end, kib in regions if end - start >= WASM_RESERVATION)


def usage(pid: int) -> Usage | None:
    """A process's resident memory, open file descriptors and threads, or None when it is gone."""
    try:
        status = dict(
            line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line
        )
        fds = len(list(Path(f"/proc/{pid}/fd").iterdir()))
        names = thread_names(pid)
    except (OSError, ValueError):
        return None
    kib = {key: int(status.get(key, "0 kB").split()[0]) for key in ("VmRSS", "RssAnon", "RssFile", "RssShmem")}
    return Usage(
        kib["VmRSS"] / 1024,
        fds,
        int(status["Threads"]),
        kib["RssAnon"] / 1024,
        (kib["RssFile"] + kib["RssShmem"]) / 1024,
        wasm_resident_kib(pid) / 1024,
        names,
    )


def growth(series: list[float]) -> float:
    """Percent growth over ``series`` (samples taken after settling): the mean of its last fifth against the
    mean of its first fifth, so that one sample's passing spike (a connection open, a worker thread busy) is
    not taken for growth, while a leak, which climbs through the whole run, still shows in full."""
    if len(series) < 2:
        return 0.0
    window = max(1, len(series) // 5)
    early, late = sum(series[:window]) / window, sum(series[-window:]) / window
    return 100.0 * (late - early) / early if early else 0.0


def connections(pids: dict[str, int]) -> dict[str, dict[str, int]]:
    """Per process of ``pids``: its established TCP connections on loopback, counted by the process at the
    other end (named from ``pids``; "soak" for this script, "other" for anyone else), from ``ss``."""
    import os
    import re
    import subprocess

    names = {pid: name for name, pid in pids.items()} | {os.getpid(): "soak"}
    out = subprocess.run(["ss", "-tnpH", "state", "established"], capture_output=True, text=True).stdout
    owner: dict[str, str] = {}
    ends: list[tuple[str, str, str]] = []
    for line in out.splitlines():
        parts = line.split()
        found = re.search(r"pid=(\d+)", line)
        if len(parts) < 4 or found is None:
            continue
        local, remote = parts[2], parts[3]
        name = names.get(int(found.group(1)), "other")
        owner[local] = name
        ends.append((name, local, remote))
    counts: dict[str, dict[str, int]] = {}
    for name, _local, remote in ends:
        peer = owner.get(remote, "other")
        counts.setdefault(name, {})[peer] = counts.setdefault(name, {}).get(peer, 0) + 1
    return counts
