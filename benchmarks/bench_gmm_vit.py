"""Cost of the GMM / ELM attention masks: GMM-ViT and ELM-ViT vs the same ViT without a mask, on CPU.

All models are the official ViT-Lite of the paper (32 px, patch 4, width 192, depth 9, 12 heads, MLP ratio 2,
100 classes, mean pooling, no [CLS]), so the only difference is the mask. The unmasked ViT is timed with both
attention backends (SDPA and eager); masked attention is always explicit (a multiplicative mask needs the scores).

Each (model, batch) runs in a fresh Python process: `torch.set_num_threads(--threads)`, eval, inference_mode,
`--warmup` untimed forwards, then the median of `--repeats` timed forwards; the models take turns over `--rounds`
rounds (one fresh process each) so load from other jobs on the machine hits them alike, and the table gives the
median (and min) over the rounds of those medians. MACs: matmuls and convs seen
by `torch.utils.flop_counter.FlopCounterMode` at batch 1 with eager attention (FLOPs / 2); the mask's element-wise
work is not a matmul, so it is counted analytically in `mask_elementwise_ops` (GMM per forward and layer: K*H*U
powers, products and sums on the U distinct patch distances, an H*N^2 gather, and B*H*N^2 products with the scores;
ELM: B*H*N^2 products per layer).

    .venv/bin/python benchmarks/bench_gmm_vit.py          # -> benchmarks/results/gmm_vit_cpu.csv
"""

import argparse
import csv
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

OUTPUT = Path(__file__).resolve().parent / "results" / "gmm_vit_cpu.csv"
CASES = {  # label -> (attention_mask_type, attention implementation)
    "vit_sdpa": ("none", "sdpa"),
    "vit_eager": ("none", "eager"),
    "gmm_vit": ("gmm", "sdpa"),
    "elm_vit": ("elm", "sdpa"),
}


def measure(label: str, batch: int, threads: int, repeats: int, warmup: int) -> dict:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from hf_vision_zoo.models.gmm_vit import GmmVitConfig, GmmVitForImageClassification

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    mask_type, backend = CASES[label]
    config = GmmVitConfig(num_labels=100, attention_mask_type=mask_type)
    model = GmmVitForImageClassification(config).eval()
    pixels = torch.randn(batch, 3, 32, 32)
    tokens, layers = config.num_patches, config.num_hidden_layers
    heads, kernels = config.num_attention_heads, config.num_kernels
    levels = model.vit.blocks[0].attn.mask.kernel_levels.numel() if mask_type == "gmm" else 0
    extra = {"none": 0, "elm": batch * layers * heads * tokens**2,  # the products with the scores
             # per layer: K*H*U powers, products and sums on the U distinct distances, an H*N^2 gather; then products
             "gmm": layers * (3 * kernels * heads * levels + heads * tokens**2) + batch * layers * heads * tokens**2,
             }[mask_type]
    with torch.inference_mode():
        model.set_attn_implementation("eager")
        with FlopCounterMode(display=False) as counter:
            model(pixels[:1])
        macs = counter.get_total_flops() / 2
        model.set_attn_implementation(backend)
        for _ in range(warmup):
            model(pixels)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            model(pixels)
            times.append(time.perf_counter() - start)
    median = statistics.median(times)
    attention = backend if mask_type == "none" else "explicit"
    return {"model": label, "attention_mask_type": mask_type, "attention": attention,
            "batch_size": batch, "threads": threads, "params": sum(p.numel() for p in model.parameters()),
            "mmacs_b1": round(macs / 1e6, 2), "mask_elementwise_ops": extra,
            "ms_median": round(median * 1e3, 2), "ms_min": round(min(times) * 1e3, 2),
            "ms_max": round(max(times) * 1e3, 2), "img_per_s": round(batch / median, 1), "repeats": repeats}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-sizes", default="1,64")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(measure(**json.loads(args.worker))))
        return
    rows = []
    for batch in (int(b) for b in args.batch_sizes.split(",")):
        runs = {label: [] for label in CASES}
        for _ in range(args.rounds):
            for label in CASES:
                job = dict(label=label, batch=batch, threads=args.threads, repeats=args.repeats, warmup=args.warmup)
                done = subprocess.run([sys.executable, __file__, "--worker", json.dumps(job)], capture_output=True,
                                      text=True, check=False)
                if done.returncode:
                    raise SystemExit(f"{label} (batch {batch}) failed:\n{done.stderr[-2000:]}")
                runs[label].append(json.loads(done.stdout.strip().splitlines()[-1]))
        for label, results in runs.items():
            row = dict(results[0])
            medians = [r["ms_median"] for r in results]
            row.update(ms_median=round(statistics.median(medians), 2), ms_min=min(r["ms_min"] for r in results),
                       ms_max=max(r["ms_max"] for r in results), rounds=len(results),
                       round_medians=" ".join(str(m) for m in medians))
            row["img_per_s"] = round(batch / row["ms_median"] * 1e3, 1)
            rows.append(row)
        base = next(r for r in rows if r["model"] == "vit_sdpa" and r["batch_size"] == batch)
        for row in rows:
            if row["batch_size"] == batch:
                row["time_vs_vit_sdpa"] = round(row["ms_median"] / base["ms_median"], 3)
                row["cpu"] = platform.processor() or platform.machine()
                print(", ".join(f"{k}={v}" for k, v in row.items()), flush=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with open(args.output, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
