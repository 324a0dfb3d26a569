"""Where a benchmark's JSON goes, and how the in-process ones time a call."""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent


def save(path: Path, result: Any) -> None:
    """Write ``result`` as JSON to ``path`` and say where."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2))
    shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    print(f"wrote {shown}")


def per_call_us(fn: Callable[[], Any], rounds: int, repeat: int = 7) -> float:
    """Median over ``repeat`` runs of the mean time per call of ``fn``, in microseconds (after a warm-up)."""
    for _ in range(min(rounds, 200)):
        fn()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(rounds):
            fn()
        samples.append((time.perf_counter() - start) / rounds * 1e6)
    return statistics.median(samples)
