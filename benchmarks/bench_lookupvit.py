"""LookupViT (zoo implementation, ViT-B/16 width) vs the zoo ViT-B/16 on CPU: FLOPs, throughput and peak memory.

    .venv/bin/python benchmarks/bench_lookupvit.py               # batch 1 and 8, 1 thread -> results/lookupvit_cpu.csv
    .venv/bin/python benchmarks/bench_lookupvit.py --quick       # smoke run (batch 1, 3 repeats)

Models: `vit_base_patch16_224` (the zoo ViT, [CLS], 197 tokens) and LookupViT at the same width/depth/heads/patch
(hidden 768, 12 layers, 12 heads, 196 lookup tokens) with the compressed grids in `--grids` (default 5x5, the
zoo's default, and 7x7, 3x3), attention reuse on (default) and, for 5x5, off. Seeded random weights (there are no
LookupViT weights); 224x224 `randn` input; SDPA attention for the timings.

Protocol (as benchmarks/bench_s2aformer.py): every (model, batch) measurement runs in a fresh Python process with
`torch.set_num_threads(--threads)` (default 1), `eval()` + `torch.inference_mode()`; after `--warmup` passes,
`--repeats` passes are timed one by one and the median (min, max) reported, in process CPU time by default
(`--clock cpu`; wall time kept beside it). FLOPs: `torch.utils.flop_counter.FlopCounterMode` on one image with
eager attention (CPU SDPA kernels are not counted by the flop counter), 1 multiply-add = 2 FLOPs, checked equal to
the cost model `estimate_flops` / `estimate_vit_flops`. Peak memory: the process's peak RSS (`ru_maxrss`) and its
increase over the forwards.
"""

import argparse
import json
import platform
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import time_forward, write_csv  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
VIT_B16 = dict(image_size=224, patch_size=16, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
               num_labels=1000)


def _models(grids: list[int]) -> dict[str, dict]:
    models = {"vit_b16": {}}
    for grid in grids:
        models[f"lookupvit_b16_{grid}x{grid}"] = {"compressed_grid_size": grid, "attention_reuse": True}
    if 5 in grids:
        models["lookupvit_b16_5x5_noreuse"] = {"compressed_grid_size": 5, "attention_reuse": False}
    return models


def _build(name: str, settings: dict):
    import torch

    from hf_vision_zoo.models.lookupvit import LookupVitConfig, LookupVitForImageClassification
    from hf_vision_zoo.models.vit import VitConfig, VitForImageClassification

    torch.manual_seed(0)
    if name == "vit_b16":
        return VitForImageClassification(VitConfig(**VIT_B16))
    return LookupVitForImageClassification(LookupVitConfig(**VIT_B16, **settings))


def _expected_flops(model) -> int:
    from hf_vision_zoo.models.lookupvit.modeling_lookupvit import estimate_flops, estimate_vit_flops

    if model.config.model_type == "zoo_lookupvit":
        return estimate_flops(model.config, with_classifier=True)
    return estimate_vit_flops(model.config, with_classifier=True)


def worker(name: str, settings: dict, batch: int, repeats: int, warmup: int, threads: int, clock_name: str) -> dict:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    torch.set_num_threads(threads)
    model = _build(name, settings).eval()
    x = torch.randn(batch, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    times, wall, rss_before, rss_after = time_forward(model, x, warmup, repeats, clock_name)
    model.set_attn_implementation("eager")
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x[:1])
    flops = counter.get_total_flops()
    if flops != _expected_flops(model):
        raise AssertionError(f"{name}: measured {flops} FLOPs, cost model {_expected_flops(model)}")
    median = statistics.median(times)
    return {
        "model": name, "impl": "zoo", "infer_img_size": 224, "infer_batch_size": batch, "dtype": "fp32",
        "compressed_grid": settings.get("compressed_grid_size", ""),
        "attention_reuse": settings.get("attention_reuse", ""),
        "infer_samples_per_sec": round(batch / median, 2), "infer_step_time": round(median * 1e3, 2),
        "infer_step_time_min": round(min(times) * 1e3, 2), "infer_step_time_max": round(max(times) * 1e3, 2),
        "clock": clock_name, "wall_step_time": round(statistics.median(wall) * 1e3, 2),
        "param_count": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
        "gflops_per_image": round(flops / 1e9, 3), "peak_rss_mb": round(rss_after, 1),
        "forward_rss_mb": round(rss_after - rss_before, 1), "attn_impl": "sdpa", "threads": threads,
        "repeats": repeats, "warmup": warmup, "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-sizes", default="1,8")
    parser.add_argument("--grids", default="5,7,3", help="compressed grid sides (square), comma separated")
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
    parser.add_argument("--output", default=str(RESULTS / "lookupvit_cpu.csv"))
    parser.add_argument("--quick", action="store_true", help="batch 1, 3 repeats, 1 warm-up, grid 5 only")
    parser.add_argument("--worker", nargs=3, metavar=("MODEL", "SETTINGS", "BATCH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.batch_sizes, args.repeats, args.warmup, args.grids = "1", 3, 1, "5"
    if args.worker:
        name, settings, batch = args.worker
        print(json.dumps(worker(name, json.loads(settings), int(batch), args.repeats, args.warmup, args.threads,
                                args.clock)))
        return
    try:
        grids = [int(g) for g in args.grids.split(",")]
        batches = [int(b) for b in args.batch_sizes.split(",")]
    except ValueError as error:
        raise SystemExit(f"--grids and --batch-sizes take comma-separated ints: {error}") from None
    if any(not 1 <= g < 14 for g in grids):
        raise SystemExit(f"--grids must be in [1, 13] (the lookup grid is 14x14), got {grids}")
    models = _models(grids)
    rows = []
    for i, batch in enumerate(batches):
        order = list(models) if i % 2 == 0 else list(reversed(models))
        for name in order:
            command = [sys.executable, __file__, "--worker", name, json.dumps(models[name]), str(batch),
                       "--repeats", str(args.repeats), "--warmup", str(args.warmup), "--threads", str(args.threads),
                       "--clock", args.clock]
            out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            rows.append(json.loads(out.strip().splitlines()[-1]))
            row = rows[-1]
            print(f"{name:<28} bs{batch}: {row['infer_step_time']:8.1f} ms ({row['infer_samples_per_sec']:6.2f} "
                  f"img/s), {row['gflops_per_image']} GFLOPs, {row['param_count']} M params, peak RSS "
                  f"{row['peak_rss_mb']} MB (+{row['forward_rss_mb']} in forward)", flush=True)
    for row in rows:  # relative to ViT-B/16 at the same batch size
        vit = next(r for r in rows if r["model"] == "vit_b16" and r["infer_batch_size"] == row["infer_batch_size"])
        row["speedup_vs_vit_b16"] = round(row["infer_samples_per_sec"] / vit["infer_samples_per_sec"], 3)
        row["flops_reduction_vs_vit_b16"] = round(vit["gflops_per_image"] / row["gflops_per_image"], 3)
    print(f"wrote {write_csv(args.output, rows)}")


if __name__ == "__main__":
    main()
