"""Swin-T inference speed: the zoo vs timm vs transformers, with identical weights (DESIGN.md §7).

1. Build timm's `swin_tiny_patch4_window7_224` with seeded random weights (every parameter perturbed, so biases
   and LayerNorms are not trivially 0/1), convert its state dict to the zoo model with the zoo's own converter, and
   load the same tensors into transformers' `SwinForImageClassification` through the small mapping below.
2. Assert fp32 logit parity (atol 1e-4) zoo vs timm and zoo vs transformers on the same input.
3. Time `eval()` + `torch.inference_mode()` forward passes with a fixed thread count, warm-up first, then timed
   repeats run round-robin over the three models (machine noise hits all of them alike); report the median.
   Each (dtype, batch) configuration runs in a fresh process (all three models in it).

Run from the repository root:

    .venv/bin/python benchmarks/bench_swin.py                      # fp32 + bf16 autocast, bs 1 and 8
    .venv/bin/python benchmarks/bench_swin.py --quick               # smoke run
    .venv/bin/python benchmarks/bench_swin.py --batch-sizes 8 --repeats 21 --dtypes fp32

Numbers from a shared 2-core CI machine are relative only: compare the ratios, not the milliseconds.
"""

import argparse
import csv
import gc
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import timm
import torch
import transformers
from transformers import SwinConfig as TransformersSwinConfig
from transformers import SwinForImageClassification as TransformersSwin

import hf_vision_zoo
from hf_vision_zoo.conversion import convert_to_model

ZOO_NAME = "swin_tiny_patch4_window7_224.ms_in1k"
TIMM_NAME = "swin_tiny_patch4_window7_224"
IMPLS = ("zoo", "timm", "transformers")
IMG_SIZE = 224
NUM_CLASSES = 1000
PARITY_ATOL = 1e-4
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results" / "swin_cpu.csv"


# ---------------------------------------------------------------------------------------------------------------
# Models with identical weights
# ---------------------------------------------------------------------------------------------------------------

def timm_to_transformers(timm_sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """timm Swin state dict -> transformers v5 in-memory names (q/k/v split; merging moves to the previous stage)."""
    block_names = {
        "norm1": "layernorm_before", "norm2": "layernorm_after", "attn.proj": "attention.o_proj",
        "mlp.fc1": "mlp.fc1", "mlp.fc2": "mlp.fc2",
    }
    out = {}
    for key, value in timm_sd.items():
        if key.endswith(("relative_position_index", "attn_mask")):
            continue
        if key.startswith("patch_embed.proj."):
            out[key.replace("patch_embed.proj.", "swin.embeddings.patch_embeddings.projection.")] = value
        elif key.startswith("patch_embed.norm."):
            out[key.replace("patch_embed.norm.", "swin.embeddings.norm.")] = value
        elif key.startswith("norm."):
            out["swin.layernorm." + key[len("norm."):]] = value
        elif key.startswith("head.fc."):
            out["classifier." + key[len("head.fc."):]] = value
        elif match := re.fullmatch(r"layers\.(\d+)\.downsample\.(.+)", key):
            # timm merges at the start of stage i + 1, transformers at the end of stage i
            out[f"swin.encoder.layers.{int(match.group(1)) - 1}.downsample.{match.group(2)}"] = value
        elif match := re.fullmatch(r"layers\.(\d+)\.blocks\.(\d+)\.(.+)\.(weight|bias)", key):
            stage, block, inner, kind = match.groups()
            prefix = f"swin.encoder.layers.{stage}.blocks.{block}."
            if inner == "attn.qkv":
                for name, part in zip(("q_proj", "k_proj", "v_proj"), value.chunk(3, dim=0)):
                    out[f"{prefix}attention.{name}.{kind}"] = part.clone()
            else:
                out[f"{prefix}{block_names[inner]}.{kind}"] = value
        elif match := re.fullmatch(r"layers\.(\d+)\.blocks\.(\d+)\.attn\.relative_position_bias_table", key):
            stage, block = match.groups()
            out[f"swin.encoder.layers.{stage}.blocks.{block}.attention.relative_position_bias."
                "relative_position_bias_table"] = value
        else:
            raise KeyError(f"no transformers name for timm key {key!r}")
    return out


def build_timm(seed: int, fused_attn: bool = False) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = timm.create_model(TIMM_NAME, pretrained=False, num_classes=NUM_CLASSES)
    for module in model.modules():  # timm's Swin runs eager attention unless told otherwise (experimental SDPA)
        if hasattr(module, "fused_attn"):
            module.fused_attn = fused_attn
    with torch.no_grad():  # make every tensor non-trivial (LayerNorm 1/0, zero biases) so parity means something
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 0.02)
    return model.eval()


def build_zoo(timm_sd: dict[str, torch.Tensor]) -> torch.nn.Module:
    config = hf_vision_zoo.create_model(ZOO_NAME).config
    if config.num_labels != NUM_CLASSES:
        raise RuntimeError(f"{ZOO_NAME} has {config.num_labels} labels, expected {NUM_CLASSES}")
    return convert_to_model("swin", timm_sd, config, "timm").eval()


def build_transformers(timm_sd: dict[str, torch.Tensor] | None) -> torch.nn.Module:
    # SwinConfig() is Swin-T (embed 96, depths 2-2-6-2, heads 3-6-12-24, window 7); only the label count is set
    model = TransformersSwin(TransformersSwinConfig(num_labels=NUM_CLASSES))
    if timm_sd is not None:
        missing, unexpected = model.load_state_dict(timm_to_transformers(timm_sd), strict=False)
        missing = [k for k in missing if not k.endswith("relative_position_index")]
        if missing or unexpected:
            raise RuntimeError(f"transformers load: missing {missing[:5]}, unexpected {unexpected[:5]}")
    return model.eval()


def build_models(seed: int, timm_fused_attn: bool = False) -> dict[str, torch.nn.Module]:
    timm_model = build_timm(seed, timm_fused_attn)
    timm_sd = timm_model.state_dict()
    return {"zoo": build_zoo(timm_sd), "timm": timm_model, "transformers": build_transformers(timm_sd)}


def logits_of(impl: str, model: torch.nn.Module, pixel_values: torch.Tensor) -> torch.Tensor:
    out = model(pixel_values)
    return out if impl == "timm" else out.logits


def check_parity(models: dict[str, torch.nn.Module], seed: int) -> dict[str, float]:
    """Max |logit difference| of timm and transformers against the zoo (fp32); raises above PARITY_ATOL."""
    torch.manual_seed(seed + 1)
    pixel_values = torch.randn(2, 3, IMG_SIZE, IMG_SIZE)
    with torch.inference_mode():
        logits = {impl: logits_of(impl, model, pixel_values) for impl, model in models.items()}
    diffs = {}
    for other in ("timm", "transformers"):
        diffs[other] = (logits["zoo"] - logits[other]).abs().max().item()
        if not torch.allclose(logits["zoo"], logits[other], atol=PARITY_ATOL, rtol=0):
            raise AssertionError(f"zoo vs {other}: max |diff| {diffs[other]:.2e} > {PARITY_ATOL}; not the same model")
    return diffs


# ---------------------------------------------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------------------------------------------

def autocast_context(dtype: str):
    if dtype == "fp32":
        return torch.autocast("cpu", enabled=False)
    return torch.autocast("cpu", dtype={"bf16": torch.bfloat16}[dtype])


def time_interleaved(models: dict[str, torch.nn.Module], batch: int, dtype: str, warmup: int, repeats: int,
                     inner: int, clock=time.perf_counter) -> dict[str, list[float]]:
    """Milliseconds per forward pass, `repeats` samples per model. Each repeat runs every model once (each sample
    averages `inner` back-to-back passes), rotating the order so no model always runs first."""
    pixel_values = torch.randn(batch, 3, IMG_SIZE, IMG_SIZE)
    names = list(models)
    samples = {name: [] for name in names}
    with torch.inference_mode(), autocast_context(dtype):
        for _ in range(warmup):
            for name in names:
                models[name](pixel_values)
        for rep in range(repeats):
            order = names[rep % len(names):] + names[:rep % len(names)]
            for name in order:
                start = clock()
                for _ in range(inner):
                    models[name](pixel_values)
                samples[name].append((clock() - start) * 1000 / inner)
    return samples


def memory_probe(impl: str, batch: int, dtype: str, threads: int) -> dict[str, float]:
    """Memory of inference in a fresh process that imports the three libraries and builds one model (random
    weights: memory does not depend on them). `peak_rss_mb`: the process's peak resident size while running two
    forward passes (it includes the same import footprint for every impl); `forward_rss_mb`: how far the passes
    raised it above the resident size before them. Empty if the probe fails (e.g. no /proc)."""
    cmd = [sys.executable, __file__, "--memory-probe", impl, "--batch-sizes", str(batch), "--dtypes", dtype,
           "--threads", str(threads)]
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=True)
        return json.loads(result.stdout.strip().splitlines()[-1])
    except (subprocess.SubprocessError, ValueError, IndexError):
        return {}


def _proc_status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024  # kB
    raise ValueError(f"no {field} in /proc/self/status")


def run_memory_probe(impl: str, batch: int, dtype: str) -> None:
    model = {"zoo": lambda: hf_vision_zoo.create_model(ZOO_NAME).eval(), "timm": lambda: build_timm(0),
             "transformers": lambda: build_transformers(None)}[impl]()
    pixel_values = torch.randn(batch, 3, IMG_SIZE, IMG_SIZE)
    gc.collect()
    before = _proc_status_mb("VmRSS")
    try:  # reset the high-water mark to the current size, so the building of the model does not count
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    with torch.inference_mode(), autocast_context(dtype):
        for _ in range(2):
            model(pixel_values)
    peak = _proc_status_mb("VmHWM")  # unlike getrusage's ru_maxrss, not inherited from the parent
    print(json.dumps({"peak_rss_mb": round(peak, 1), "forward_rss_mb": round(max(0.0, peak - before), 1)}))


# ---------------------------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------------------------

CSV_COLUMNS = [
    "model", "impl", "infer_img_size", "infer_batch_size", "dtype", "infer_samples_per_sec", "infer_step_time",
    "infer_step_time_min", "infer_step_time_max", "ratio_vs_timm", "ratio_vs_transformers", "param_count",
    "peak_rss_mb", "forward_rss_mb", "attn_impl", "parity_max_abs_diff", "threads", "clock", "repeats", "warmup", "inner", "device", "cpu", "torch",
    "transformers", "timm",
]


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def print_table(rows: list[dict]) -> None:
    header = f"{'impl':<13}{'batch':>6}{'dtype':>6}{'ms/batch':>10}{'min-max':>15}{'img/s':>8}" \
             f"{'vs timm':>9}{'vs trf':>8}{'params M':>10}{'RSS MB':>8}{'fwd MB':>8}"
    print(header)
    print("-" * len(header))
    for r in rows:
        rss = f"{r['peak_rss_mb']:.0f}" if r["peak_rss_mb"] != "" else "-"
        fwd = f"{r['forward_rss_mb']:.0f}" if r["forward_rss_mb"] != "" else "-"
        spread = f"{r['infer_step_time_min']:.1f}-{r['infer_step_time_max']:.1f}"
        print(f"{r['impl']:<13}{r['infer_batch_size']:>6}{r['dtype']:>6}{r['infer_step_time']:>10.1f}{spread:>15}"
              f"{r['infer_samples_per_sec']:>8.1f}{r['ratio_vs_timm']:>9.3f}{r['ratio_vs_transformers']:>8.3f}"
              f"{r['param_count']:>10.2f}{rss:>8}{fwd:>8}")


def run_config(args, dtype: str, batch: int) -> dict:
    """Build the three models, check parity and time one (dtype, batch) configuration."""
    models = build_models(args.seed, args.timm_fused_attn)
    diffs = check_parity(models, args.seed)
    inner = args.inner or max(1, 8 // batch)
    clock = time.perf_counter if args.clock == "wall" else time.process_time
    samples = time_interleaved(models, batch, dtype, args.warmup, args.repeats, inner, clock)
    return {
        "samples": samples, "diffs": diffs, "inner": inner,
        "params": {impl: sum(p.numel() for p in m.parameters()) / 1e6 for impl, m in models.items()},
        "attn_impl": {"zoo": models["zoo"].config._attn_implementation,
                      "timm": "sdpa" if args.timm_fused_attn else "eager",
                      "transformers": models["transformers"].config._attn_implementation},
    }


def run_config_in_subprocess(args, dtype: str, batch: int) -> dict:
    """`run_config` in a fresh interpreter, so the allocator state one configuration leaves behind (e.g. the heap
    grown by batch-8 fp32 buffers) cannot favour one implementation in the next."""
    cmd = [sys.executable, __file__, "--worker", "--dtypes", dtype, "--batch-sizes", str(batch),
           "--repeats", str(args.repeats), "--warmup", str(args.warmup), "--threads", str(args.threads),
           "--clock", args.clock, "--seed", str(args.seed)]
    if args.inner:
        cmd += ["--inner", str(args.inner)]
    if args.timm_fused_attn:
        cmd.append("--timm-fused-attn")
    result = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"benchmark worker for {dtype} batch {batch} failed (exit {result.returncode})")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-sizes", default="1,8", help="comma-separated (default 1,8)")
    parser.add_argument("--dtypes", default="fp32,bf16", help="fp32 and/or bf16 (CPU autocast); default both")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed samples per model, the median is reported (default 15; 3 with --quick)")
    parser.add_argument("--warmup", type=int, default=None,
                        help="untimed passes per model before timing (default 3; 1 with --quick)")
    parser.add_argument("--inner", type=int, default=None,
                        help="passes averaged per sample (default: 8 // batch, at least 1)")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="wall time (default), or this process's CPU time: with --threads 1 it is barely "
                             "disturbed by other programs on a shared machine")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-RSS subprocess probes")
    parser.add_argument("--timm-fused-attn", action="store_true",
                        help="run timm's Swin with its (experimental) SDPA attention instead of its eager default")
    parser.add_argument("--same-process", action="store_true",
                        help="time every configuration in this process instead of one fresh process each")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: fp32 only, 1 warm-up, 3 repeats, no memory probes")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help=f"CSV path (default {DEFAULT_OUTPUT})")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--memory-probe", choices=IMPLS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    dtypes = [d.strip() for d in args.dtypes.split(",")]
    if unknown := set(dtypes) - {"fp32", "bf16"}:
        parser.error(f"unknown dtypes {sorted(unknown)}; use fp32 and/or bf16")
    if args.memory_probe:
        run_memory_probe(args.memory_probe, batch_sizes[0], dtypes[0])
        return
    if args.quick:
        dtypes, args.no_memory = ["fp32"], True
    args.repeats = args.repeats or (3 if args.quick else 15)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.quick else 3)
    if args.worker:
        print(json.dumps(run_config(args, dtypes[0], batch_sizes[0])))
        return

    print(f"torch {torch.__version__}, transformers {transformers.__version__}, timm {timm.__version__}, "
          f"threads {torch.get_num_threads()}, {cpu_name()}, {args.clock} clock, {args.repeats} repeats after "
          f"{args.warmup} warm-up passes")
    rows = []
    for dtype in dtypes:
        for batch in batch_sizes:
            result = (run_config if args.same_process else run_config_in_subprocess)(args, dtype, batch)
            samples, diffs = result["samples"], result["diffs"]
            median = {impl: statistics.median(s) for impl, s in samples.items()}
            print(f"\n{dtype}, batch {batch}: parity OK (fp32 logits, atol {PARITY_ATOL}): max |zoo - timm| = "
                  f"{diffs['timm']:.2e}, max |zoo - transformers| = {diffs['transformers']:.2e}; attention "
                  + ", ".join(f"{impl} {attn}" for impl, attn in result["attn_impl"].items()))
            for impl in IMPLS:
                memory = {} if args.no_memory else memory_probe(impl, batch, dtype, args.threads)
                rows.append({
                    "model": {"zoo": ZOO_NAME, "timm": TIMM_NAME,
                              "transformers": "SwinForImageClassification(SwinConfig())"}[impl],
                    "impl": impl, "infer_img_size": IMG_SIZE, "infer_batch_size": batch, "dtype": dtype,
                    "infer_samples_per_sec": round(1000 * batch / median[impl], 2),
                    "infer_step_time": round(median[impl], 2),
                    "infer_step_time_min": round(min(samples[impl]), 2),
                    "infer_step_time_max": round(max(samples[impl]), 2),
                    # throughput ratios: > 1 means this row is faster than the reference
                    "ratio_vs_timm": round(median["timm"] / median[impl], 3),
                    "ratio_vs_transformers": round(median["transformers"] / median[impl], 3),
                    "param_count": round(result["params"][impl], 2),
                    "peak_rss_mb": memory.get("peak_rss_mb", ""), "forward_rss_mb": memory.get("forward_rss_mb", ""),
                    "attn_impl": result["attn_impl"][impl],
                    "parity_max_abs_diff": 0.0 if impl == "zoo" else f"{diffs[impl]:.2e}",
                    "threads": args.threads, "clock": args.clock, "repeats": args.repeats,
                    "warmup": args.warmup, "inner": result["inner"], "device": "cpu", "cpu": cpu_name(),
                    "torch": torch.__version__, "transformers": transformers.__version__, "timm": timm.__version__,
                })
            print_table(rows[-len(IMPLS):])

    print("\nSummary (ratio = this row's throughput / the reference's; on zoo rows > 1 means the zoo is faster):")
    print_table(rows)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with open(args.output, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    print(f"\nwrote {args.output}")


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
