#!/usr/bin/env python
"""MAE speed on CPU: the zoo's `MaeForPreTraining` vs transformers' `ViTMAEForPreTraining` on identical weights, and
the zoo's pre-training step against the mask ratio.

Measured (1 thread by default, fp32, batch 2 (`--batch`), 224 px, MAE-B = mae_vit_base_patch16_dec512d8b):
- `step`: one pre-training step, forward + loss + backward (train mode, no dropout), at mask ratio 0.75;
- `encoder`: the encoder's forward on the visible tokens (eval, inference_mode), mask ratio 0.75;
- `step` of the zoo model at mask ratios 0, 0.5, 0.75, 0.9.
Each (implementation, measurement, ratio) runs in a FRESH process (no allocator or cache state shared), the
configurations are interleaved over several rounds so machine noise hits all of them alike, and each process
reports the median of its repetitions after a warm-up (wall time and process CPU time: with one thread, CPU time
does not count the time other processes hold the core, so it is the steadier measure on a shared machine); the
table gives the median over rounds. Before timing, the
two implementations are checked to give the same loss on the same weights and noise.

    python benchmarks/bench_mae.py                       # batch 2: writes benchmarks/results/mae_cpu.csv
    python benchmarks/bench_mae.py --batch 8             # writes benchmarks/results/mae_cpu_batch8.csv
    python benchmarks/bench_mae.py --rounds 5 --reps 5 --threads 2

The 1-minute load average is printed at the start and after every round and stored (min-max over the run) in the
`load_average` column: on a shared machine, read the numbers with it.
"""

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

RESULTS_DIR = Path(__file__).parent / "results"


def default_output(batch: int) -> Path:
    """`mae_cpu.csv` for batch 2 (the headline table), `mae_cpu_batch<N>.csv` otherwise."""
    return RESULTS_DIR / ("mae_cpu.csv" if batch == 2 else f"mae_cpu_batch{batch}.csv")


RATIOS = (0.0, 0.5, 0.75, 0.9)
IMAGE_SIZE = 224


def build(impl: str, seed: int = 0):
    """MAE-B with seeded random weights: transformers' model, or the zoo's converted from the very same weights."""
    import torch
    from transformers import ViTMAEConfig, ViTMAEForPreTraining

    torch.manual_seed(seed)
    reference = ViTMAEForPreTraining(ViTMAEConfig(layer_norm_eps=1e-6, norm_pix_loss=True))
    if impl == "transformers":
        return reference
    from hf_vision_zoo.conversion import convert_to_model
    from hf_vision_zoo.conversion import mae as mae_conversion

    config = mae_conversion.config_from_transformers(reference.config.to_dict())
    return convert_to_model("mae", reference.state_dict(), config, "transformers", task="pretraining")


def inputs(batch: int):
    import torch

    generator = torch.Generator().manual_seed(1)
    pixels = torch.randn(batch, 3, IMAGE_SIZE, IMAGE_SIZE, generator=generator)
    noise = torch.rand(batch, (IMAGE_SIZE // 16) ** 2, generator=generator)
    return pixels, noise


def run_once(impl: str, what: str, ratio: float, model, pixels, noise):
    import torch

    if what == "encoder":
        with torch.inference_mode():
            if impl == "transformers":
                model.vit(pixels, noise=noise)
            else:
                model.vit(pixels, noise=noise, mask_ratio=ratio)
        return
    model.zero_grad(set_to_none=True)
    loss = model(pixels, noise=noise).loss if impl == "transformers" else model(pixels, noise=noise,
                                                                              mask_ratio=ratio).loss
    loss.backward()


def worker(impl: str, what: str, ratio: float, batch: int, reps: int, threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    model = build(impl)
    if impl == "transformers":
        model.config.mask_ratio = ratio
    model.train(what == "step")
    if what == "encoder":
        model.eval()
    pixels, noise = inputs(batch)
    run_once(impl, what, ratio, model, pixels, noise)  # warm-up
    times, cpu_times = [], []
    for _ in range(reps):
        start, cpu_start = time.perf_counter(), time.process_time()
        run_once(impl, what, ratio, model, pixels, noise)
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
    return {"median_ms": 1000 * statistics.median(times), "cpu_median_ms": 1000 * statistics.median(cpu_times)}


def check_parity(batch: int) -> float:
    """Same weights + same noise -> same loss (and mask) in both implementations; returns |loss difference|."""
    import torch

    torch.set_num_threads(1)
    pixels, noise = inputs(batch)
    outputs = {}
    for impl in ("transformers", "zoo"):
        model = build(impl).eval()
        with torch.no_grad():
            outputs[impl] = model(pixels, noise=noise)
    difference = (outputs["zoo"].loss - outputs["transformers"].loss).abs().item()
    assert difference < 1e-4, f"the two implementations disagree (loss difference {difference})"
    assert torch.equal(outputs["zoo"].mask, outputs["transformers"].mask)
    torch.testing.assert_close(outputs["zoo"].logits, outputs["transformers"].logits, atol=1e-4, rtol=0)
    return difference


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (one fresh process per config)")
    parser.add_argument("--reps", type=int, default=4, help="timed repetitions per process (after one warm-up)")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", type=Path, default=None, help="default: results/mae_cpu[_batch<N>].csv")
    parser.add_argument("--worker", nargs=3, metavar=("IMPL", "WHAT", "RATIO"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        impl, what, ratio = args.worker
        print(json.dumps(worker(impl, what, float(ratio), args.batch, args.reps, args.threads)))
        return 0

    output = args.output or default_output(args.batch)
    loads = [os.getloadavg()[0]]
    print(f"load average (1 min) at start: {loads[0]:.2f}", flush=True)
    difference = check_parity(args.batch)
    print(f"parity: |loss(zoo) - loss(transformers)| = {difference:.2e} on the same weights and noise")
    configs = [("zoo", "step", 0.75), ("transformers", "step", 0.75), ("zoo", "encoder", 0.75),
               ("transformers", "encoder", 0.75)] + [("zoo", "step", r) for r in RATIOS if r != 0.75]
    samples = {config: [] for config in configs}
    cpu_samples = {config: [] for config in configs}
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    for round_index in range(args.rounds):
        order = configs if round_index % 2 == 0 else configs[::-1]  # interleave, alternating direction
        for impl, what, ratio in order:
            command = [sys.executable, __file__, "--worker", impl, what, str(ratio), "--batch", str(args.batch),
                       "--reps", str(args.reps), "--threads", str(args.threads)]
            result = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
            report = json.loads(result.stdout.strip().splitlines()[-1])
            samples[(impl, what, ratio)].append(report["median_ms"])
            cpu_samples[(impl, what, ratio)].append(report["cpu_median_ms"])
            print(f"round {round_index + 1}: {impl:12s} {what:7s} ratio {ratio:.2f}: {report['median_ms']:8.1f} ms "
                  f"wall, {report['cpu_median_ms']:8.1f} ms CPU", flush=True)
        loads.append(os.getloadavg()[0])
        print(f"load average (1 min) after round {round_index + 1}: {loads[-1]:.2f}", flush=True)

    medians = {config: statistics.median(values) for config, values in samples.items()}
    cpu = {config: statistics.median(values) for config, values in cpu_samples.items()}
    rows = []
    for (impl, what, ratio), median in medians.items():
        config, peer = (impl, what, ratio), ("transformers", what, ratio)
        compare = impl == "zoo" and peer in medians
        relative = impl == "zoo" and what == "step"
        rows.append({
            "implementation": impl, "measurement": what, "mask_ratio": ratio, "batch": args.batch,
            "image_size": IMAGE_SIZE, "threads": args.threads, "median_ms": round(median, 1),
            "cpu_median_ms": round(cpu[config], 1),
            "rounds_ms": " ".join(f"{v:.1f}" for v in samples[config]),
            # on a shared machine process CPU time (1 thread) is the steadier measure; both are reported
            "speedup_vs_transformers": round(medians[peer] / median, 3) if compare else "",
            "cpu_speedup_vs_transformers": round(cpu[peer] / cpu[config], 3) if compare else "",
            "cost_vs_unmasked_step": round(median / medians[("zoo", "step", 0.0)], 3) if relative else "",
            "cpu_cost_vs_unmasked_step": round(cpu[config] / cpu[("zoo", "step", 0.0)], 3) if relative else "",
            "cpu_rounds_ms": " ".join(f"{v:.1f}" for v in cpu_samples[config]),
            "load_average": f"{min(loads):.1f}-{max(loads):.1f}",
        })
    output.parent.mkdir(parents=True, exist_ok=True)
    with output.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"\nwrote {output}")
    for row in rows:
        print(row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
