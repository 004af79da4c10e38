"""Timing shared by the efficiency benchmarks: warm-up, timed repeats (process CPU or wall clock) and the resident
memory the forward passes added, for one model in the current (fresh) process; and the results CSV, written
atomically."""

import csv
import resource
import time
from pathlib import Path


def rss_mb() -> float:
    """Peak resident set size of this process, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def time_forward(model, inputs, warmup: int, repeats: int, clock_name: str = "cpu"):
    """`(times, wall_times, rss_before, rss_after)`: `repeats` timed inference forwards after `warmup` untimed
    ones; `times` uses process CPU time (`clock_name="cpu"`) or wall time."""
    import torch

    clock = time.process_time if clock_name == "cpu" else time.perf_counter
    before = rss_mb()
    with torch.inference_mode():
        for _ in range(warmup):
            model(inputs)
        times, wall = [], []
        for _ in range(repeats):
            start, start_wall = clock(), time.perf_counter()
            model(inputs)
            times.append(clock() - start)
            wall.append(time.perf_counter() - start_wall)
    return times, wall, before, rss_mb()


def write_csv(path, rows: list[dict]) -> Path:
    """Write `rows` (columns from the first row) to `path` through a temporary sibling, so an interrupted run never
    leaves a half-written results file; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(path)
    return path
