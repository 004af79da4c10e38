"""Sparsifiner's real sparse attention vs dense attention on CPU: attention FLOPs and time.

One DeiT-S attention layer (width 384, 6 heads of 64) at several token counts N and per-query budgets k:
- `dense`: the zoo ViT's `SelfAttention` (SDPA) with the same qkv/proj weights;
- `sparse`: `SparsifinerAttention`, attention_path="sparse" (predictor + the k gathered keys per query; SDPA);
- `masked`: `SparsifinerAttention`, attention_path="masked" (the official emulation: dense scores + `-inf` mask).
It also times the whole DeiT-S-sized model (12 blocks, 224 px) dense vs sparse at the paper's keep rate 0.25.

FLOPs are counted by `torch.utils.flop_counter.FlopCounterMode` at batch 1 with eager attention (the counter does not
see inside the CPU SDPA kernels): `attn_core_gflops` = the attention module minus its qkv/proj linears (so: scores,
softmax-weighted values and, for Sparsifiner, its connectivity predictor), `mhsa_gflops` = the whole module
(qkv + core + proj). FLOPs here are the counter's (2 per multiply-add).

Every setting runs in a fresh Python process (`--worker`) with `torch.set_num_threads(1)`, eval mode and
`torch.inference_mode()`; the variants of a setting are interleaved (`--warmup` untimed rounds, then `--repeats`
timed rounds) and the median time per forward is reported. Results: benchmarks/results/sparsifiner_cpu.csv.

    .venv/bin/python benchmarks/bench_sparsifiner.py            # ~3-4 minutes on one core
"""

import argparse
import csv
import json
import math
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
WIDTH, HEADS, PATCH = 384, 6, 16
# (image side, keep rate or None, explicit budget or None): the paper's keep rates at 224 px (N = 197), larger N at
# keep 0.25, a fixed small k at growing N (where O(N k) should win if anything does), and budgets at N = 197
LAYER_SETTINGS = ([(224, rate, None) for rate in (0.5, 0.25, 0.1)]
                  + [(side, 0.25, None) for side in (112, 384)]
                  + [(side, None, 16) for side in (224, 384, 512)]
                  + [(224, None, k) for k in (4, 100, 197)])


def _attention_modules(side: int, rate, budget):
    import torch

    from hf_vision_zoo.layers import SelfAttention
    from hf_vision_zoo.models.sparsifiner import SparsifinerConfig
    from hf_vision_zoo.models.sparsifiner.modeling_sparsifiner import SparsifinerAttention

    kwargs = dict(attn_keep_rate=rate) if budget is None else dict(attention_budget=budget)
    config = SparsifinerConfig(image_size=side, patch_size=PATCH, hidden_size=WIDTH, num_hidden_layers=1,
                               num_attention_heads=HEADS, **kwargs)
    config._attn_implementation = "sdpa"
    torch.manual_seed(0)
    sparsifiner = SparsifinerAttention(config, 0).eval()
    with torch.no_grad():
        for p in sparsifiner.parameters():
            p.normal_(std=0.1)
    dense = SelfAttention(config, WIDTH, HEADS).eval()
    dense.load_state_dict({k: v for k, v in sparsifiner.state_dict().items() if not k.startswith("mask_predictor")})
    return config, dense, sparsifiner


def _count(fn) -> float:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        fn()
    return counter.get_flop_counts()


def _core(counts: dict, root: str) -> tuple[float, float]:
    total = {name: sum(c.values()) for name, c in counts.items()}
    mhsa = total.get(root, 0)
    return mhsa, mhsa - total.get(f"{root}.qkv", 0) - total.get(f"{root}.proj", 0)


def layer_worker(spec: dict) -> list[dict]:
    import torch

    torch.set_num_threads(1)
    config, dense, sparsifiner = _attention_modules(spec["side"], spec["rate"], spec["budget"])
    tokens = config.num_tokens
    grid = config.grid_size
    k = config.budget(0)
    x = torch.randn(spec["batch"], tokens, WIDTH)

    def run(name):
        if name == "dense":
            return dense(x)[0]
        config.attention_path = name
        return sparsifiner(x, grid)[0]

    with torch.inference_mode():  # the paths agree (same math) before anything is timed
        config.attention_path = "sparse"
        a = sparsifiner(x, grid)[0]
        config.attention_path = "masked"
        b = sparsifiner(x, grid)[0]
        assert (a - b).abs().max() < 1e-4, "sparse and masked paths disagree"
    # FLOPs at batch 1 with eager attention
    config._attn_implementation = "eager"
    one = x[:1]
    flops = {}
    for name, module in (("dense", dense), ("sparse", sparsifiner), ("masked", sparsifiner)):
        if name != "dense":
            config.attention_path = name
        counts = _count(lambda: module(one)[0] if name == "dense" else module(one, grid)[0])
        flops[name] = _core(counts, type(module).__name__)
    config._attn_implementation = "sdpa"
    names = ("dense", "sparse", "masked")
    times = {n: [] for n in names}
    with torch.inference_mode():
        for i in range(spec["warmup"] + spec["repeats"]):
            for name in names:  # interleaved
                start = time.perf_counter()
                run(name)
                if i >= spec["warmup"]:
                    times[name].append(time.perf_counter() - start)
    rows = []
    for name in names:
        mhsa, core = flops[name]
        rows.append(dict(scope="attention_layer", variant=name, image_size=spec["side"], tokens=tokens,
                         keep_rate=spec["rate"] if spec["rate"] is not None else round(k / tokens, 4), k=k,
                         batch=spec["batch"], attn_core_gflops=round(core / 1e9, 5), mhsa_gflops=round(mhsa / 1e9, 5),
                         median_ms=round(1e3 * statistics.median(times[name]), 3),
                         min_ms=round(1e3 * min(times[name]), 3)))
    return rows


def model_worker(spec: dict) -> list[dict]:
    import torch

    import hf_vision_zoo  # noqa: F401
    from hf_vision_zoo.models.sparsifiner import SparsifinerConfig, SparsifinerForImageClassification
    from hf_vision_zoo.models.vit import VitConfig, VitForImageClassification

    torch.set_num_threads(1)
    torch.manual_seed(0)
    sizes = dict(image_size=224, patch_size=PATCH, hidden_size=WIDTH, num_hidden_layers=12, num_attention_heads=HEADS,
                 num_labels=1000)
    sparse = SparsifinerForImageClassification(SparsifinerConfig(**sizes, attn_keep_rate=0.25)).eval()
    dense = VitForImageClassification(VitConfig(**sizes)).eval()
    dense.load_state_dict({k: v for k, v in sparse.state_dict().items() if "mask_predictor" not in k})
    x = torch.randn(spec["batch"], 3, 224, 224)
    times = {"dense": [], "sparse": []}
    with torch.inference_mode():
        for i in range(spec["warmup"] + spec["repeats"]):
            for name, model in (("dense", dense), ("sparse", sparse)):
                start = time.perf_counter()
                model(x)
                if i >= spec["warmup"]:
                    times[name].append(time.perf_counter() - start)
    flops = {}
    for name, model in (("dense", dense), ("sparse", sparse)):
        model.set_attn_implementation("eager")
        counts = _count(lambda: model(x[:1]))
        total = {n: sum(c.values()) for n, c in counts.items()}
        root = type(model).__name__
        flops[name] = total[root]
    return [dict(scope="deit_s_model", variant=name, image_size=224, tokens=197, keep_rate=0.25 if name == "sparse"
                 else 1.0, k=50 if name == "sparse" else 197, batch=spec["batch"], attn_core_gflops="",
                 mhsa_gflops="", model_gflops=round(flops[name] / 1e9, 4),
                 median_ms=round(1e3 * statistics.median(times[name]), 3), min_ms=round(1e3 * min(times[name]), 3))
            for name in times]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--output", type=Path, default=RESULTS / "sparsifiner_cpu.csv")
    args = parser.parse_args(argv)
    if args.worker:
        spec = json.loads(args.worker)
        rows = model_worker(spec) if spec["kind"] == "model" else layer_worker(spec)
        print(json.dumps(rows))
        return 0
    specs = [dict(kind="layer", side=side, rate=rate, budget=budget, batch=args.batch, warmup=args.warmup,
                  repeats=args.repeats) for side, rate, budget in LAYER_SETTINGS]
    specs.append(dict(kind="model", batch=args.batch, warmup=2, repeats=max(5, args.repeats // 3)))
    rows = []
    for spec in specs:  # one fresh process per setting
        result = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)], capture_output=True,
                                text=True, check=True)
        new = json.loads(result.stdout.strip().splitlines()[-1])
        rows.extend(new)
        by = {r["variant"]: r for r in new}
        if spec["kind"] == "layer":
            d, s, m = by["dense"], by["sparse"], by["masked"]
            print(f"N={d['tokens']:5d} k={s['k']:4d}: core GFLOPs dense {d['attn_core_gflops']:.4f} sparse "
                  f"{s['attn_core_gflops']:.4f} ({100 * (1 - s['attn_core_gflops'] / d['attn_core_gflops']):.0f}% "
                  f"fewer), masked {m['attn_core_gflops']:.4f} | ms dense {d['median_ms']:.2f} sparse "
                  f"{s['median_ms']:.2f} masked {m['median_ms']:.2f} (sparse/dense {s['median_ms'] / d['median_ms']:.2f})")
        else:
            print("DeiT-S model: " + ", ".join(f"{r['variant']} {r['median_ms']:.1f} ms {r['model_gflops']} GFLOPs"
                                                for r in new))
    fields = ["scope", "variant", "image_size", "tokens", "keep_rate", "k", "batch", "attn_core_gflops",
              "mhsa_gflops", "model_gflops", "median_ms", "min_ms"]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with args.output.open("w", newline="") as handle:
        handle.write(f"# torch threads 1, {platform.processor() or platform.machine()}, python "
                     f"{platform.python_version()}; fresh process per setting, interleaved, median\n")
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        for row in rows:
            writer.writerow({f: row.get(f, "") for f in fields})
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
