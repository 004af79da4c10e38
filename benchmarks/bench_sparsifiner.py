"""Sparsifiner's real sparse attention vs dense attention on CPU: FLOPs and time of the attention core, the
connectivity predictor, the whole attention layer and the whole DeiT-S-sized model.

    .venv/bin/python benchmarks/bench_sparsifiner.py --threads 1 --clock cpu   # ~4 min -> results/sparsifiner_cpu.csv
    .venv/bin/python benchmarks/bench_sparsifiner.py --quick                    # smoke run (tiny sizes)

Settings: one DeiT-S attention layer (width 384, 6 heads of 64) at the paper's keep rates at 224 px (N = 197 tokens;
keep 0.25 = k 50, at batch 2 and 8), larger N at keep 0.25, a fixed small k at growing N, and other budgets at
N = 197. Rows (`scope`, `variant`), each timed on the same random input and weights:
- `attention_core`: `dense` = SDPA over all N keys; `sparse` = what Sparsifiner's sparse path does once the key
  indices are known ([CLS] query dense, each patch query over its k keys through the default kernel, the
  block-diagonal CSR one of `layers.sparse_attention`); `gather` = the same through the gather kernel (the previous
  implementation, kept for the record; timed after the others, a third of the repeats, as its large temporaries
  slow down whatever runs next);
- `predictor`: the connectivity predictor alone (low-rank approximation + top-k key selection), sparse variant;
- `attention_layer`: `dense` = the zoo ViT's `SelfAttention` (SDPA) with the same qkv/proj weights; `sparse` =
  `SparsifinerAttention` on its sparse path (qkv + predictor + sparse core + proj); `masked` = its official emulation
  (dense scores with a `-inf` mask);
- `deit_s_model`: the zoo ViT DeiT-S (12 blocks, 224 px) vs Sparsifiner-S at keep 0.25 (sparse path), same weights.
`speedup_vs_dense` is the dense row's median time over this row's (above 1: faster than dense).

Protocol: every setting runs in a fresh Python process (`--worker`) with `torch.set_num_threads(--threads)` (default
1), eval mode and `torch.inference_mode()`; its variants are interleaved (`--warmup` untimed rounds, then
`--repeats` timed rounds) and the median is reported, in process CPU time by default (`--clock cpu`, barely
disturbed by other programs on a shared machine at 1 thread). The paths are checked to agree before timing.
FLOPs (`gflops_per_image`) come from `torch.utils.flop_counter.FlopCounterMode` at batch 1 with eager attention and
the gather kernels (the counter does not see inside CPU SDPA, and sizes sparse CSR products as dense ones; the gather
kernels do the same arithmetic in ops it counts), 2 FLOPs per multiply-add.
"""

import argparse
import csv
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
DEIT_S = dict(width=384, heads=6, patch=16, layers=12, predictor={})
QUICK = dict(width=64, heads=2, patch=8, layers=2, predictor=dict(reduce_n_factor=4, basis_coef_topk=2))
# (image side, keep rate or None, explicit budget or None, batch): the paper's keep rates at 224 px (N = 197), larger
# N at keep 0.25, a fixed small k at growing N, budgets at N = 197
LAYER_SETTINGS = ([(224, rate, None, 2) for rate in (0.5, 0.25, 0.1)] + [(224, 0.25, None, 8)]
                  + [(side, 0.25, None, 2) for side in (112, 384)]
                  + [(side, None, 16, 2) for side in (224, 384, 512)] + [(224, None, 16, 8)]
                  + [(224, None, k, 2) for k in (4, 100, 197)])
MODEL_BATCHES = (2, 8)
QUICK_LAYER_SETTINGS = [(32, 0.25, None, 2)]
QUICK_MODEL_BATCHES = (2,)
FIELDS = ["scope", "variant", "image_size", "tokens", "keep_rate", "k", "batch", "gflops_per_image", "median_ms",
          "min_ms", "max_ms", "speedup_vs_dense", "threads", "clock", "loadavg_start", "loadavg_end"]


def _config(sizes: dict, side: int, rate, budget, layers: int = 1):
    from hf_vision_zoo.models.sparsifiner import SparsifinerConfig

    kwargs = dict(attn_keep_rate=rate) if budget is None else dict(attention_budget=budget)
    config = SparsifinerConfig(image_size=side, patch_size=sizes["patch"], hidden_size=sizes["width"],
                               num_hidden_layers=layers, num_attention_heads=sizes["heads"], num_labels=1000,
                               **sizes["predictor"], **kwargs)
    config._attn_implementation = "sdpa"
    return config


def _gflops(fn) -> float:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from hf_vision_zoo.layers.sparse_attention import use_kernel

    with FlopCounterMode(display=False) as counter, torch.inference_mode(), use_kernel("gather"):
        fn()
    return counter.get_total_flops() / 1e9


def _time(functions: dict, warmup: int, repeats: int, clock_name: str) -> dict:
    """Interleaved timing: every round runs each function once; returns the per-function samples in ms."""
    import torch

    clock = time.process_time if clock_name == "cpu" else time.perf_counter
    samples = {name: [] for name in functions}
    with torch.inference_mode():
        for i in range(warmup + repeats):
            for name, fn in functions.items():
                start = clock()
                fn()
                if i >= warmup:
                    samples[name].append(1e3 * (clock() - start))
    return samples


def _rows(scope: str, samples: dict, flops: dict, dense: str | None, common: dict) -> list[dict]:
    rows = []
    for name, times in samples.items():
        median = statistics.median(times)
        speedup = round(statistics.median(samples[dense]) / median, 3) if dense else ""
        rows.append(dict(common, scope=scope, variant=name, gflops_per_image=round(flops[name], 6),
                         median_ms=round(median, 3), min_ms=round(min(times), 3), max_ms=round(max(times), 3),
                         speedup_vs_dense=speedup))
    return rows


def layer_worker(spec: dict) -> list[dict]:
    import torch

    from hf_vision_zoo.layers import SelfAttention, get_attention_function
    from hf_vision_zoo.layers.sparse_attention import topk_sparse_attention
    from hf_vision_zoo.models.sparsifiner.modeling_sparsifiner import SparsifinerAttention

    torch.set_num_threads(spec["threads"])
    load_start = os.getloadavg()[0]
    sizes = QUICK if spec["quick"] else DEIT_S
    config = _config(sizes, spec["side"], spec["rate"], spec["budget"])
    config.attention_path = "sparse"
    torch.manual_seed(0)
    sparsifiner = SparsifinerAttention(config, 0).eval()
    with torch.no_grad():
        for p in sparsifiner.parameters():
            p.normal_(std=0.1)
    dense = SelfAttention(config, sizes["width"], sizes["heads"]).eval()
    dense.load_state_dict({k: v for k, v in sparsifiner.state_dict().items() if not k.startswith("mask_predictor")})
    tokens, grid, k, heads = config.num_tokens, tuple(config.grid_size), config.budget(0), sizes["heads"]
    predictor, scaling = sparsifiner.mask_predictor, sparsifiner.scaling

    def qkv(x):
        batch = x.shape[0]
        return sparsifiner.qkv(x).reshape(batch, tokens, 3, heads, -1).permute(2, 0, 3, 1, 4).unbind(0)

    def core_dense(q, key, v):
        attention = get_attention_function(config)
        return attention(sparsifiner, q, key, v, None, scaling=scaling, dropout=0.0)[0]

    def core_sparse(q, key, v, indices, kernel=None):
        attention = get_attention_function(config)
        cls = attention(sparsifiner, q[:, :, :1], key, v, None, scaling=scaling, dropout=0.0)[0]
        patches = topk_sparse_attention(q[:, :, 1:], key, v, indices, scaling, attention, sparsifiner,
                                        kernel=kernel)[0]
        return torch.cat([cls, patches.transpose(1, 2)], dim=1)

    def predict(q, key):
        return predictor(q, key, k, grid, sparse=True, raw=False)["key_indices"]

    def layer(path):
        config.attention_path = path
        return sparsifiner

    x = torch.randn(spec["batch"], tokens, sizes["width"])
    with torch.inference_mode():
        q, key, v = qkv(x)
        indices = predict(q, key)
        # the paths agree before anything is timed
        mask = torch.zeros(*q.shape[:-1], tokens, dtype=torch.bool)
        mask[:, :, 0] = True
        mask[:, :, 1:].scatter_(-1, indices, True)
        scores = (q @ key.transpose(-1, -2) * scaling).masked_fill(~mask, float("-inf"))
        reference = (scores.softmax(-1) @ v).transpose(1, 2)
        for kernel in (None, "gather"):
            assert (core_sparse(q, key, v, indices, kernel) - reference).abs().max() < 1e-4, kernel
        assert (layer("sparse")(x, grid)[0] - layer("masked")(x, grid)[0]).abs().max() < 1e-4
    common = dict(image_size=spec["side"], tokens=tokens, k=k, batch=spec["batch"],
                  keep_rate=spec["rate"] if spec["rate"] is not None else round(k / tokens, 4),
                  threads=spec["threads"], clock=spec["clock"])
    one = x[:1]
    with torch.inference_mode():
        q1, key1, v1 = qkv(one)
        indices1 = predict(q1, key1)
    config._attn_implementation = "eager"
    flops = {"core": {"dense": _gflops(lambda: core_dense(q1, key1, v1)),
                      "sparse": _gflops(lambda: core_sparse(q1, key1, v1, indices1))},
             "predictor": {"sparse": _gflops(lambda: predict(q1, key1))},
             "layer": {"dense": _gflops(lambda: dense(one)), "sparse": _gflops(lambda: layer("sparse")(one, grid)),
                       "masked": _gflops(lambda: layer("masked")(one, grid))}}
    flops["core"]["gather"] = flops["core"]["sparse"]
    config._attn_implementation = "sdpa"
    functions = {
        ("core", "dense"): lambda: core_dense(q, key, v),
        ("core", "sparse"): lambda: core_sparse(q, key, v, indices),
        ("predictor", "sparse"): lambda: predict(q, key),
        ("layer", "dense"): lambda: dense(x),
        ("layer", "sparse"): lambda: layer("sparse")(x, grid),
        ("layer", "masked"): lambda: layer("masked")(x, grid),
    }
    samples = _time(functions, spec["warmup"], spec["repeats"], spec["clock"])
    # the old gather kernel on its own afterwards: its large temporaries would disturb the interleaved timings
    samples.update(_time({("core", "gather"): lambda: core_sparse(q, key, v, indices, "gather")},
                         min(spec["warmup"], 1), max(1, spec["repeats"] // 3), spec["clock"]))
    common.update(loadavg_start=round(load_start, 2), loadavg_end=round(os.getloadavg()[0], 2))
    rows = []
    for scope, name, dense_name in (("core", "attention_core", "dense"), ("predictor", "predictor", None),
                                    ("layer", "attention_layer", "dense")):
        part = {variant: times for (s, variant), times in samples.items() if s == scope}
        rows += _rows(name, part, flops[scope], dense_name, common)
    return rows


def model_worker(spec: dict) -> list[dict]:
    import torch

    import hf_vision_zoo  # noqa: F401
    from hf_vision_zoo.models.sparsifiner import SparsifinerForImageClassification
    from hf_vision_zoo.models.vit import VitConfig, VitForImageClassification

    torch.set_num_threads(spec["threads"])
    load_start = os.getloadavg()[0]
    sizes = QUICK if spec["quick"] else DEIT_S
    side = 32 if spec["quick"] else 224
    torch.manual_seed(0)
    config = _config(sizes, side, 0.25, None, layers=sizes["layers"])
    sparse = SparsifinerForImageClassification(config).eval()
    vit_config = VitConfig(image_size=side, patch_size=sizes["patch"], hidden_size=sizes["width"],
                           num_hidden_layers=sizes["layers"], num_attention_heads=sizes["heads"], num_labels=1000)
    dense = VitForImageClassification(vit_config).eval()
    dense.load_state_dict({k: v for k, v in sparse.state_dict().items() if "mask_predictor" not in k})
    x = torch.randn(spec["batch"], 3, side, side)
    samples = _time({"dense": lambda: dense(x), "sparse": lambda: sparse(x)}, spec["warmup"], spec["repeats"],
                    spec["clock"])
    flops = {}
    for name, model in (("dense", dense), ("sparse", sparse)):
        model.set_attn_implementation("eager")
        flops[name] = _gflops(lambda: model(x[:1]))
    tokens = config.num_tokens
    common = dict(image_size=side, tokens=tokens, keep_rate=0.25, k=config.budget(0), batch=spec["batch"],
                  threads=spec["threads"], clock=spec["clock"], loadavg_start=round(load_start, 2),
                  loadavg_end=round(os.getloadavg()[0], 2))
    return _rows("deit_s_model", samples, flops, "dense", common)


def _summary(rows: list[dict]) -> str:
    by = {(r["scope"], r["variant"]): r for r in rows}
    first = rows[0]
    head = f"N={first['tokens']:5d} k={first['k']:4d} batch {first['batch']}: "
    if first["scope"] == "deit_s_model":
        d, s = by[("deit_s_model", "dense")], by[("deit_s_model", "sparse")]
        return (head + f"model dense {d['median_ms']:.1f} ms, sparse {s['median_ms']:.1f} ms "
                f"(x{s['speedup_vs_dense']}), GFLOPs {d['gflops_per_image']:.3f} vs {s['gflops_per_image']:.3f}")
    core, gather = by[("attention_core", "sparse")], by[("attention_core", "gather")]
    dense_core, predictor = by[("attention_core", "dense")], by[("predictor", "sparse")]
    layer, dense_layer = by[("attention_layer", "sparse")], by[("attention_layer", "dense")]
    return (head + f"core ms dense {dense_core['median_ms']:.2f} sparse {core['median_ms']:.2f} "
            f"(x{core['speedup_vs_dense']}) gather {gather['median_ms']:.2f}; predictor {predictor['median_ms']:.2f}"
            f"; layer dense {dense_layer['median_ms']:.2f} sparse {layer['median_ms']:.2f} "
            f"(x{layer['speedup_vs_dense']}); core GFLOPs {dense_core['gflops_per_image']:.4f} -> "
            f"{core['gflops_per_image']:.4f} (+ predictor {predictor['gflops_per_image']:.4f})")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads in every worker (default 1)")
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                        help="process CPU time (default) or wall time")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=15, help="timed rounds per layer setting (model: a third)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one setting each: a smoke test")
    parser.add_argument("--output", type=Path, help="CSV path (default results/sparsifiner_cpu.csv; with --quick "
                                                    "results/sparsifiner_quick.csv)")
    args = parser.parse_args(argv)
    if args.worker:
        spec = json.loads(args.worker)
        rows = model_worker(spec) if spec["kind"] == "model" else layer_worker(spec)
        print(json.dumps(rows))
        return 0
    if args.threads < 1 or args.repeats < 1 or args.warmup < 0:
        parser.error("--threads and --repeats must be >= 1, --warmup >= 0")
    output = args.output or RESULTS / ("sparsifiner_quick.csv" if args.quick else "sparsifiner_cpu.csv")
    base = dict(threads=args.threads, clock=args.clock, quick=args.quick)
    specs = [dict(base, kind="layer", side=side, rate=rate, budget=budget, batch=batch, warmup=args.warmup,
                  repeats=args.repeats)
             for side, rate, budget, batch in (QUICK_LAYER_SETTINGS if args.quick else LAYER_SETTINGS)]
    specs += [dict(base, kind="model", batch=batch, warmup=min(args.warmup, 2), repeats=max(1, args.repeats // 3))
              for batch in (QUICK_MODEL_BATCHES if args.quick else MODEL_BATCHES)]
    print(f"{len(specs)} settings, {args.threads} thread(s), {args.clock} clock, load average "
          f"{os.getloadavg()[0]:.2f}", flush=True)
    rows = []
    for spec in specs:  # one fresh process per setting
        result = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)], capture_output=True,
                                text=True)
        if result.returncode:
            raise RuntimeError(f"worker {spec} failed:\n{result.stderr[-3000:]}")
        new = json.loads(result.stdout.strip().splitlines()[-1])
        rows.extend(new)
        print(_summary(new), flush=True)
    output.parent.mkdir(parents=True, exist_ok=True)
    with output.open("w", newline="") as handle:
        handle.write(f"# torch threads {args.threads}, {args.clock} clock, {platform.processor() or platform.machine()}"
                     f", python {platform.python_version()}; fresh process per setting, variants interleaved, median "
                     f"of {args.repeats} (models {max(1, args.repeats // 3)})\n")
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        writer.writeheader()
        for row in rows:
            writer.writerow({f: row.get(f, "") for f in FIELDS})
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
