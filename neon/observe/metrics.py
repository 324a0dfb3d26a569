"""Counters, gauges and histograms, rendered in Prometheus' text format (0.0.4).

Thread-safe: guest calls are counted from worker threads. A family is keyed by
label values; ``render`` writes every family of a registry, and families whose
values are only known at scrape time (instance counts, say) are added as
collectors that return ready-made families. The families of one registry share
its lock, so a hook that updates several of them on every call's path (a
:class:`Meter`) takes one lock, not one per family.
"""

from __future__ import annotations

import bisect
import math
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

# Seconds: from a fused call (tens of microseconds) to a slow forwarded one.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)

Labels = tuple[str, ...]


class Family:
    """One metric name with its help text, type and label names."""

    kind = "untyped"

    def __init__(
        self, name: str, help_text: str, labels: Sequence[str] = (), lock: threading.Lock | None = None
    ) -> None:
        self.name = name
        self.help = help_text
        self.labels = tuple(labels)
        self.lock = lock or threading.Lock()

    def _check(self, values: Labels) -> Labels:
        """Label values as given (strings; this is on every call's path, so they are not converted)."""
        if len(values) != len(self.labels):
            raise ValueError(f"{self.name} takes labels {self.labels}, got {values}")
        return values

    def lines(self) -> Iterable[str]:
        raise NotImplementedError


class Counter(Family):
    kind = "counter"

    def __init__(
        self, name: str, help_text: str, labels: Sequence[str] = (), lock: threading.Lock | None = None
    ) -> None:
        super().__init__(name, help_text, labels, lock)
        self._values: dict[Labels, list[float]] = {}  # a one-item list each: a meter keeps it and adds to it

    def inc(self, *values: str, amount: float = 1.0) -> None:
        key = self._check(values)
        with self.lock:
            cell = self._values.get(key)
            if cell is None:
                self._values[key] = [amount]
            else:
                cell[0] += amount

    def set(self, *values: str, value: float) -> None:
        key = self._check(values)
        with self.lock:
            cell = self._values.get(key)
            if cell is None:
                self._values[key] = [value]
            else:
                cell[0] = value  # in place: a meter may hold the cell

    def cell(self, *values: str) -> list[float]:
        """The running value of one set of labels (made at 0), to be added to under :attr:`lock`."""
        key = self._check(values)
        with self.lock:
            return self._values.setdefault(key, [0.0])

    def value(self, *values: str) -> float:
        with self.lock:
            cell = self._values.get(self._check(values))
            return cell[0] if cell else 0.0

    def items(self) -> list[tuple[Labels, float]]:
        with self.lock:
            return sorted((key, cell[0]) for key, cell in self._values.items())

    def lines(self) -> Iterable[str]:
        for key, value in self.items():
            yield f"{self.name}{_labels(self.labels, key)} {_number(value)}"


class Gauge(Counter):
    kind = "gauge"


@dataclass(frozen=True)
class HistogramValue:
    """Per-bucket counts (not cumulative; the last is above every bound), their sum and count."""

    counts: tuple[int, ...]
    sum: float

    @property
    def count(self) -> int:
        return sum(self.counts)

    def minus(self, earlier: HistogramValue | None) -> HistogramValue:
        if earlier is None:
            return self
        return HistogramValue(
            tuple(a - b for a, b in zip(self.counts, earlier.counts, strict=True)), self.sum - earlier.sum
        )


def empty_histogram(bounds: Sequence[float] = LATENCY_BUCKETS) -> HistogramValue:
    return HistogramValue((0,) * (len(bounds) + 1), 0.0)


class Histogram(Family):
    kind = "histogram"

    def __init__(
        self,
        name: str,
        help_text: str,
        labels: Sequence[str] = (),
        bounds: Sequence[float] = LATENCY_BUCKETS,
        lock: threading.Lock | None = None,
    ) -> None:
        super().__init__(name, help_text, labels, lock)
        self.bounds = tuple(bounds)
        self._values: dict[Labels, tuple[list[int], list[float]]] = {}

    def observe(self, seconds: float, *values: str) -> None:
        key = self._check(values)
        index = bisect.bisect_left(self.bounds, seconds)
        with self.lock:
            slot = self._values.get(key)
            if slot is None:
                slot = self._values[key] = ([0] * (len(self.bounds) + 1), [0.0])
            slot[0][index] += 1
            slot[1][0] += seconds

    def slot(self, *values: str) -> tuple[list[int], list[float]]:
        """The per-bucket counts and the one-item sum of one set of labels (made empty), to be added
        to under :attr:`lock`."""
        key = self._check(values)
        with self.lock:
            return self._values.setdefault(key, ([0] * (len(self.bounds) + 1), [0.0]))

    def set(self, value: HistogramValue, *values: str) -> None:
        key = self._check(values)
        with self.lock:
            slot = self._values.get(key)
            if slot is None:
                self._values[key] = (list(value.counts), [value.sum])
            else:  # in place: a meter may hold the slot
                slot[0][:] = value.counts
                slot[1][0] = value.sum

    def value(self, *values: str) -> HistogramValue:
        with self.lock:
            slot = self._values.get(self._check(values))
            return HistogramValue(tuple(slot[0]), slot[1][0]) if slot else empty_histogram(self.bounds)

    def items(self) -> list[tuple[Labels, HistogramValue]]:
        with self.lock:
            return sorted((k, HistogramValue(tuple(c), s[0])) for k, (c, s) in self._values.items())

    def lines(self) -> Iterable[str]:
        for key, value in self.items():
            running = 0
            for bound, count in zip((*self.bounds, math.inf), value.counts, strict=True):
                running += count
                le = "+Inf" if bound == math.inf else _number(bound)
                yield f"{self.name}_bucket{_labels((*self.labels, 'le'), (*key, le))} {running}"
            yield f"{self.name}_sum{_labels(self.labels, key)} {_number(value.sum)}"
            yield f"{self.name}_count{_labels(self.labels, key)} {running}"


class Meter:
    """The calls of one component or link: counted by outcome, timed, and optionally their bytes each
    way, in families that share one lock.

    :meth:`record` is on every call's path: one lock, no label lookups. Its series are made at the
    first call (a meter made ahead of time shows nothing until then), and a failed call, the rare
    case, is counted by its labels, so no zero series of errors appears for what never failed.
    """

    __slots__ = ("_calls", "_outcome", "_latency", "_latency_labels", "_moved", "_cells")

    def __init__(
        self,
        calls: Counter,
        outcome_labels: Labels,
        latency: Histogram,
        latency_labels: Labels,
        moved: tuple[Counter, Labels, Labels] | None = None,
    ) -> None:
        """``calls`` is labelled ``(*outcome_labels, "ok" | "error")``; ``moved``: a byte counter and
        its labels for the bytes sent and received."""
        if calls.lock is not latency.lock or (moved is not None and moved[0].lock is not calls.lock):
            raise ValueError(f"{calls.name} and {latency.name} must share a lock (make them in one Registry)")
        self._calls, self._outcome = calls, outcome_labels
        self._latency, self._latency_labels = latency, latency_labels
        self._moved = moved
        self._cells: tuple[list[float], list[int], list[float], list[float], list[float]] | None = None

    def _made(self) -> tuple[list[float], list[int], list[float], list[float], list[float]]:
        ok = self._calls.cell(*self._outcome, "ok")
        counts, total = self._latency.slot(*self._latency_labels)
        sent, received = [0.0], [0.0]
        if self._moved is not None:
            counter, sent_labels, received_labels = self._moved
            sent, received = counter.cell(*sent_labels), counter.cell(*received_labels)
        self._cells = (ok, counts, total, sent, received)
        return self._cells

    def record(self, seconds: float, ok: bool, sent: int = 0, received: int = 0) -> None:
        """One call that took ``seconds``; ``sent``/``received``: its bytes each way, when it crossed nodes."""
        calls, counts, total, sent_total, received_total = self._cells or self._made()
        index = bisect.bisect_left(self._latency.bounds, seconds)
        with self._calls.lock:
            if ok:
                calls[0] += 1
            counts[index] += 1
            total[0] += seconds
            if sent or received:
                sent_total[0] += sent
                received_total[0] += received
        if not ok:
            self._calls.inc(*self._outcome, "error")


def moving_average(average: float, sample: float) -> float:
    """``average`` moved a tenth of the way to ``sample`` (the sample itself while ``average`` is 0: none yet)."""
    return sample if not average else 0.9 * average + 0.1 * sample


def quantile(q: float, value: HistogramValue, bounds: Sequence[float] = LATENCY_BUCKETS) -> float | None:
    """The q-quantile estimated from bucket counts, interpolating inside the bucket (as PromQL's
    ``histogram_quantile``); None without observations. Above the last bound it says the last bound."""
    total = value.count
    if total == 0:
        return None
    rank = q * total
    running = 0
    for i, count in enumerate(value.counts):
        if running + count >= rank and count:
            if i == len(bounds):
                return bounds[-1]
            lower = bounds[i - 1] if i else 0.0
            return lower + (bounds[i] - lower) * (rank - running) / count
        running += count
    return bounds[-1]


Collector = Callable[[], Iterable[Family]]


class Registry:
    """The families a process exposes, plus collectors called at each scrape. The families it makes
    share its :attr:`lock`."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._families: list[Family] = []
        self._collectors: list[Collector] = []

    def add(self, family: Family) -> None:
        self._families.append(family)

    def counter(self, name: str, help_text: str, labels: Sequence[str] = ()) -> Counter:
        family = Counter(name, help_text, labels, self.lock)
        self.add(family)
        return family

    def gauge(self, name: str, help_text: str, labels: Sequence[str] = ()) -> Gauge:
        family = Gauge(name, help_text, labels, self.lock)
        self.add(family)
        return family

    def histogram(self, name: str, help_text: str, labels: Sequence[str] = ()) -> Histogram:
        family = Histogram(name, help_text, labels, lock=self.lock)
        self.add(family)
        return family

    def collect(self, collector: Collector) -> None:
        self._collectors.append(collector)

    def render(self) -> str:
        families = list(self._families)
        for collector in self._collectors:
            families.extend(collector())
        return render(families)


CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def render(families: Iterable[Family]) -> str:
    out: list[str] = []
    for family in families:
        out.append(f"# HELP {family.name} {_escape(family.help, quote=False)}")
        out.append(f"# TYPE {family.name} {family.kind}")
        out.extend(family.lines())
    return "\n".join(out) + "\n"


def _labels(names: Sequence[str], values: Sequence[str]) -> str:
    if not names:
        return ""
    return "{" + ",".join(f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True)) + "}"


def _escape(text: str, quote: bool = True) -> str:
    text = text.replace("\\", "\\\\").replace("\n", "\\n")
    return text.replace('"', '\\"') if quote else text


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))
