"""Hyena N-D vs the zoo's DeiT-Tiny (plain ViT) at 224 px on CPU: throughput, FLOPs, parameters and memory.

    .venv/bin/python benchmarks/bench_hyena_nd.py                      # writes benchmarks/results/hyena_nd_cpu.csv
    .venv/bin/python benchmarks/bench_hyena_nd.py --rounds 1 --repeats 3 --batch-sizes 1

Every measurement runs in a fresh worker process with `torch.set_num_threads(1)` (eval, `torch.inference_mode`,
fp32, random weights): `--warmup` untimed forwards, then `--repeats` timed ones; the worker reports the median, min and
max wall time and its peak RSS. Workers of the different models are interleaved, `--rounds` times, and the CSV holds
the median over rounds, so slow phases of this shared machine hit every model alike.

FLOPs: `torch.utils.flop_counter.FlopCounterMode` counts matmuls, convolutions and attention (2 FLOPs per MAC) for
one image; it has no formula for FFTs, so the FFT long convolutions are added analytically: per long convolution,
two real 2-D FFTs of the input channels and one of the filters on the `2H x 2W` zero-padded grid plus the inverse,
each `2.5 N log2 N` FLOPs per channel (N = 4HW), and 6 FLOPs per complex product.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
MODELS = {  # row name -> (registry name, overrides)
    "hyena_nd_deit_tiny (all Hyena-2D)": ("hyena_nd_deit_tiny_patch16_224", {"num_labels": 1000}),
    "hyena_nd_hybrid_deit_tiny (7 Hyena + 5 attention)": ("hyena_nd_hybrid_deit_tiny_patch16_224",
                                                          {"num_labels": 1000}),
    "deit_tiny (zoo ViT, attention)": ("deit_tiny_patch16_224.fb_in1k", {"num_labels": 1000}),
}  # all with a 1000-class head, so the parameter counts are the catalog's
BASELINE = "deit_tiny (zoo ViT, attention)"


def _fft_flops(model) -> float:
    """Analytic FLOPs of the FFT long convolutions of one image (see the module docstring)."""
    from hf_vision_zoo.layers.hyena import HyenaOperator2d

    total = 0.0
    for module in model.modules():
        if isinstance(module, HyenaOperator2d):
            side = module.max_grid
            n = (2 * side) ** 2
            fft = 2.5 * n * math.log2(n)
            convs = module.order - 1
            # per long conv: rfft2 of the C input channels, of the C filters, the product, irfft2 of C channels
            total += convs * module.dim * (3 * fft + 6 * n / 2)
    return total


def worker(name: str, batch_sizes: list[int], repeats: int, warmup: int) -> dict:
    import resource

    import torch
    from torch.utils.flop_counter import FlopCounterMode

    torch.set_num_threads(1)
    import hf_vision_zoo  # noqa: F401
    from hf_vision_zoo import registry

    registry_name, overrides = MODELS[name]
    torch.manual_seed(0)
    model = registry.create_model(registry_name, **overrides).eval()
    params = sum(p.numel() for p in model.parameters())
    with torch.no_grad():  # FlopCounterMode does not work under inference_mode
        counter = FlopCounterMode(display=False)
        with counter:
            model(torch.randn(1, 3, 224, 224))
    counted = counter.get_total_flops()
    fft = _fft_flops(model)
    rows = []
    for batch in batch_sizes:
        x = torch.randn(batch, 3, 224, 224)
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        times = []
        with torch.inference_mode():
            for i in range(warmup + repeats):
                start = time.perf_counter()
                model(x)
                if i >= warmup:
                    times.append((time.perf_counter() - start) * 1000)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        rows.append({"batch_size": batch, "ms_median": statistics.median(times), "ms_min": min(times),
                     "ms_max": max(times), "peak_rss_mb": peak, "forward_rss_growth_mb": peak - rss_before})
    return {"params": params, "counted_flops": counted, "fft_flops": fft, "rows": rows,
            "torch": torch.__version__}


def run_worker(name: str, args) -> dict:
    command = [sys.executable, __file__, "--worker", name, "--batch-sizes", ",".join(map(str, args.batch_sizes)),
               "--repeats", str(args.repeats), "--warmup", str(args.warmup)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=3600)
    if result.returncode:
        raise RuntimeError(f"worker for {name} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch-sizes", type=lambda s: [int(v) for v in s.split(",")], default=[1, 8])
    parser.add_argument("--output", type=Path, default=RESULTS / "hyena_nd_cpu.csv")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.batch_sizes, args.repeats, args.warmup)))
        return

    rounds = {name: [] for name in MODELS}
    for r in range(args.rounds):
        for name in MODELS:
            rounds[name].append(run_worker(name, args))
            print(f"round {r + 1}/{args.rounds}: {name}: "
                  + ", ".join(f"b{row['batch_size']} {row['ms_median']:.1f} ms" for row in rounds[name][-1]["rows"]),
                  flush=True)
    table = []
    for name, results in rounds.items():
        first = results[0]
        for i, batch in enumerate(args.batch_sizes):
            per_round = [res["rows"][i] for res in results]
            median = statistics.median(row["ms_median"] for row in per_round)
            table.append({
                "model": name, "registry_name": MODELS[name][0], "img_size": 224, "batch_size": batch, "threads": 1,
                "params_m": round(first["params"] / 1e6, 3),
                "gflops_per_image": round((first["counted_flops"] + first["fft_flops"]) / 1e9, 3),
                "gflops_counted": round(first["counted_flops"] / 1e9, 3),
                "gflops_fft_analytic": round(first["fft_flops"] / 1e9, 4),
                "ms_median": round(median, 1),
                "ms_min": round(min(row["ms_min"] for row in per_round), 1),
                "ms_max": round(max(row["ms_max"] for row in per_round), 1),
                "img_per_s": round(batch * 1000 / median, 2),
                "peak_rss_mb": round(statistics.median(row["peak_rss_mb"] for row in per_round), 1),
                "forward_rss_growth_mb": round(statistics.median(row["forward_rss_growth_mb"] for row in per_round), 1),
                "rounds": args.rounds, "repeats": args.repeats, "warmup": args.warmup,
                "torch": first["torch"], "cpu": platform.machine(),
            })
    for row in table:
        base = next(r for r in table if r["model"] == BASELINE and r["batch_size"] == row["batch_size"])
        row["time_ratio_vs_deit_tiny"] = round(row["ms_median"] / base["ms_median"], 3)
        row["flops_ratio_vs_deit_tiny"] = round(row["gflops_per_image"] / base["gflops_per_image"], 3)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with open(args.output, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(table[0]))
        writer.writeheader()
        writer.writerows(table)
    print(f"wrote {args.output}")
    for row in table:
        print(f"{row['model']:52s} b{row['batch_size']}: {row['ms_median']:8.1f} ms ({row['img_per_s']:6.2f} img/s, "
              f"x{row['time_ratio_vs_deit_tiny']:.2f}), {row['gflops_per_image']:.3f} GFLOPs "
              f"(x{row['flops_ratio_vs_deit_tiny']:.2f}), {row['params_m']:.2f} M params, "
              f"peak RSS {row['peak_rss_mb']:.0f} MB (+{row['forward_rss_growth_mb']:.0f})")


if __name__ == "__main__":
    main()
