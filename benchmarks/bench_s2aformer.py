"""S2AFormer (reconstruction, default config) vs the zoo's Swin-T on CPU: throughput, FLOPs and peak memory.

    .venv/bin/python benchmarks/bench_s2aformer.py               # batch 1 and 8, 1 thread -> results/s2aformer_cpu.csv
    .venv/bin/python benchmarks/bench_s2aformer.py --quick       # smoke run (batch 1, 3 repeats)

Protocol: every (model, batch) measurement runs in a fresh Python process (so one model's heap does not change the
next one's timings), with `torch.set_num_threads(--threads)` (default 1), `eval()` + `torch.inference_mode()`,
seeded random weights, 224x224 `randn` input and SDPA attention. After `--warmup` passes, `--repeats` passes are
timed one by one and the median (with min and max) is reported, by default in process CPU time (`--clock cpu`:
other programs on a shared 2-core machine barely disturb it; wall time is kept beside it); the models alternate
order between batch sizes.
FLOPs are counted with `torch.utils.flop_counter.FlopCounterMode` on one image with eager attention (so every
attention matmul is seen; 1 multiply-add = 2 FLOPs), in total and inside the attention modules (`*.attn`).
Peak memory is the process's peak RSS (`ru_maxrss`, imports included) and its increase over the forwards
(warm-up included, measured after the model is built).
There are no S2AFormer weights and no official code: the S2AFormer row measures this reconstruction, not the
paper's models.
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
MODELS = {"s2aformer": "s2aformer (default config, reconstruction)",
          "swin": "swin_tiny_patch4_window7_224.ms_in1k"}


def _build(name: str):
    import torch

    import hf_vision_zoo

    torch.manual_seed(0)
    if name == "s2aformer":
        return hf_vision_zoo.create_model("s2aformer", num_labels=1000)
    return hf_vision_zoo.create_model(MODELS["swin"])


def worker(name: str, batch: int, repeats: int, warmup: int, threads: int, size: int, clock_name: str) -> dict:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    torch.set_num_threads(threads)
    model = _build(name).eval()
    x = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(1))
    times, wall, rss_before, rss_after = time_forward(model, x, warmup, repeats, clock_name)
    model.set_attn_implementation("eager")
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x[:1])
    counts = counter.get_flop_counts()
    attn = sum(sum(v.values()) for k, v in counts.items() if k.endswith(".attn"))
    median = statistics.median(times)
    return {
        "model": MODELS[name], "impl": "zoo", "infer_img_size": size, "infer_batch_size": batch, "dtype": "fp32",
        "infer_samples_per_sec": round(batch / median, 2), "infer_step_time": round(median * 1e3, 2),
        "infer_step_time_min": round(min(times) * 1e3, 2), "infer_step_time_max": round(max(times) * 1e3, 2),
        "clock": clock_name, "wall_step_time": round(statistics.median(wall) * 1e3, 2),
        "param_count": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
        "gflops_per_image": round(counter.get_total_flops() / 1e9, 3), "attn_gflops_per_image": round(attn / 1e9, 3),
        "peak_rss_mb": round(rss_after, 1), "forward_rss_mb": round(rss_after - rss_before, 1),
        "attn_impl": "sdpa", "threads": threads, "repeats": repeats, "warmup": warmup,
        "torch": torch.__version__, "cpu": platform.processor() or platform.machine(),
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-sizes", default="1,8")
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                        help="cpu: process CPU time (robust on a shared machine; with 1 thread it is the compute "
                             "time), wall: elapsed time; the other one is kept in `wall_step_time`")
    parser.add_argument("--output", default=str(RESULTS / "s2aformer_cpu.csv"))
    parser.add_argument("--quick", action="store_true", help="batch 1, 3 repeats, 1 warm-up")
    parser.add_argument("--worker", nargs=2, metavar=("MODEL", "BATCH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.batch_sizes, args.repeats, args.warmup = "1", 3, 1
    if args.worker:
        result = worker(args.worker[0], int(args.worker[1]), args.repeats, args.warmup, args.threads,
                        args.image_size, args.clock)
        print(json.dumps(result))
        return
    rows = []
    for i, batch in enumerate(int(b) for b in args.batch_sizes.split(",")):
        order = list(MODELS) if i % 2 == 0 else list(reversed(MODELS))
        for name in order:
            command = [sys.executable, __file__, "--worker", name, str(batch), "--repeats", str(args.repeats),
                       "--warmup", str(args.warmup), "--threads", str(args.threads),
                       "--image-size", str(args.image_size), "--clock", args.clock]
            out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            rows.append(json.loads(out.strip().splitlines()[-1]))
            print(f"{rows[-1]['model']:<45} bs{batch}: {rows[-1]['infer_step_time']:8.1f} ms "
                  f"({rows[-1]['infer_samples_per_sec']:6.2f} img/s), {rows[-1]['gflops_per_image']} GFLOPs "
                  f"(attention {rows[-1]['attn_gflops_per_image']}), peak RSS {rows[-1]['peak_rss_mb']} MB "
                  f"(+{rows[-1]['forward_rss_mb']} in forward)", flush=True)
    for row in rows:  # throughput relative to Swin-T at the same batch size
        batch = row["infer_batch_size"]
        swin = next(r for r in rows if r["model"] == MODELS["swin"] and r["infer_batch_size"] == batch)
        row["ratio_vs_swin_t"] = round(row["infer_samples_per_sec"] / swin["infer_samples_per_sec"], 3)
        row["flops_ratio_vs_swin_t"] = round(row["gflops_per_image"] / swin["gflops_per_image"], 3)
    print(f"wrote {write_csv(args.output, rows)}")


if __name__ == "__main__":
    main()
