"""PPMA-T vs the zoo's Swin-T at 224 px on CPU: throughput, MACs and memory (and, with --official-repo, the official
PPMA-T code with the same weights, after checking the outputs agree).

Every measurement runs in a fresh Python process (`--worker`), with `torch.set_num_threads(--threads)`, eval mode
and `torch.inference_mode()`: `--warmup` untimed forwards, then the median (and min/max) of `--repeats` timed ones.
MACs are counted by `torch.utils.flop_counter.FlopCounterMode` (matmuls and convs, FLOPs / 2, the unit of the
papers' "FLOPs"), at batch 1, with eager attention (the counter does not see inside the CPU SDPA kernels).
Memory: the process's peak RSS, and its growth during the timed forwards.

    .venv/bin/python benchmarks/bench_ppma.py                          # -> benchmarks/results/ppma_cpu.csv
    .venv/bin/python benchmarks/bench_ppma.py --official-repo /tmp/ppma --batch-sizes 1
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
MODELS = {  # label -> (registry variant, attention implementation)
    "ppma_t_sdpa": ("ppma_tiny_224.in1k", "sdpa"),
    "ppma_t_eager": ("ppma_tiny_224.in1k", "eager"),
    "swin_t_sdpa": ("swin_tiny_patch4_window7_224.ms_in1k", "sdpa"),
}


def _rss_mb() -> float:
    """Current resident set size (Linux)."""
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def worker(spec: dict) -> dict:
    import resource

    import torch
    from torch.utils.flop_counter import FlopCounterMode

    torch.set_num_threads(spec["threads"])
    torch.manual_seed(0)
    if spec["model"] == "ppma_t_official":
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "fixtures"))
        from make_ppma_official_fixture import load_official

        module, _ = load_official(Path(spec["official_repo"]))
        model = module.PPMAViT_T(None).eval()
        reference = _zoo_from_official(model)
        check = torch.randn(1, 3, 224, 224)
        with torch.inference_mode():
            diff = (model(check) - reference(check).logits).abs().max().item()
        if diff > 1e-4:
            raise SystemExit(f"official and zoo PPMA-T disagree by {diff}")
        del reference
    else:
        import hf_vision_zoo

        variant, implementation = MODELS[spec["model"]]
        model = hf_vision_zoo.create_model(variant)
        model.set_attn_implementation(implementation)
        model.eval()
        diff = None
    params = sum(p.numel() for p in model.parameters())
    x = torch.randn(spec["batch_size"], 3, 224, 224)
    with torch.inference_mode():
        macs = None
        if spec["batch_size"] == 1:
            # counted with eager attention: FlopCounterMode does not see inside the CPU SDPA kernels
            if hasattr(model, "set_attn_implementation"):
                model.set_attn_implementation("eager")
            with FlopCounterMode(display=False) as counter:
                model(x)
            macs = counter.get_total_flops() / 2
            if hasattr(model, "set_attn_implementation"):
                model.set_attn_implementation(implementation)
        for _ in range(spec["warmup"]):
            model(x)
        before = _rss_mb()
        times = []
        for _ in range(spec["repeats"]):
            start = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    median = statistics.median(times)
    return {"model": spec["model"], "batch_size": spec["batch_size"], "threads": spec["threads"],
            "params_m": round(params / 1e6, 3), "gmacs": round(macs / 1e9, 3) if macs else "",
            "step_ms_median": round(median * 1e3, 1), "step_ms_min": round(min(times) * 1e3, 1),
            "step_ms_max": round(max(times) * 1e3, 1), "img_per_s": round(spec["batch_size"] / median, 2),
            "peak_rss_mb": round(peak, 1), "forward_rss_growth_mb": round(max(peak - before, 0.0), 1),
            "repeats": spec["repeats"], "warmup": spec["warmup"],
            "parity_vs_zoo": f"{diff:.2e}" if diff is not None else ""}


def _zoo_from_official(official):
    from hf_vision_zoo import registry
    from hf_vision_zoo.conversion import convert_to_model

    config = registry.get_config("ppma_tiny_224.in1k")
    return convert_to_model("ppma", official.state_dict(), config, "official")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma list of {', '.join(MODELS)}")
    parser.add_argument("--batch-sizes", default="1,4")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--official-repo", help="checkout of zhongchenzhao/PPMA: also time the official PPMA-T (b1)")
    parser.add_argument("--output", default=str(RESULTS / "ppma_cpu.csv"))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return
    specs = [dict(model=m, batch_size=int(b), threads=args.threads, repeats=args.repeats, warmup=args.warmup)
             for b in args.batch_sizes.split(",") for m in args.models.split(",")]
    if args.official_repo:
        specs.append(dict(model="ppma_t_official", batch_size=1, threads=args.threads,
                          repeats=max(2, args.repeats // 2),
                          warmup=1, official_repo=str(Path(args.official_repo).resolve())))
    rows = []
    for spec in specs:
        done = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)], capture_output=True,
                              text=True, check=False)
        if done.returncode:
            raise SystemExit(f"{spec['model']} b{spec['batch_size']} failed:\n{done.stderr[-2000:]}")
        row = json.loads(done.stdout.strip().splitlines()[-1])
        row.update(cpu=platform.processor() or platform.machine())
        rows.append(row)
        print(", ".join(f"{k}={v}" for k, v in row.items()), flush=True)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    with open(args.output, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
