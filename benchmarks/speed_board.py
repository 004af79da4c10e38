"""Speed board: the zoo vs timm and transformers on every architecture they share, with identical weights.

For each architecture in `ARCHS` whose zoo package imports (Swin vs timm and transformers, CrossViT vs timm, CvT vs
transformers) and each row (inference at batch 1 and 8, one training step at batch 8; fp32 and bf16 autocast):

1. Build the peer model with seeded random weights (every parameter perturbed, so LayerNorms and biases are not
   1/0) and convert its state dict with the zoo's own converter,
   `hf_vision_zoo.conversion.convert_to_model(arch, peer_state_dict, config, source)`. A second peer (Swin's
   transformers model) gets the same tensors through a mapping here, and the zoo converter must turn its state dict
   into exactly the zoo model's tensors.
2. Assert parity before timing: fp32 logits (eval) within `atol`; for training rows also the loss and every
   parameter gradient of one step (train mode, no dropout), at a loose tolerance.
3. Time interleaved: warm-up first, then each repeat runs every implementation once in a rotating order; a sample
   is the mean of `inner` back-to-back steps; medians are reported. Wall time and this process's CPU time are both
   recorded, with torch's thread count and the load average. Every (arch, row, dtype) runs in a fresh process.
4. Write a long CSV (one line per implementation) and a markdown table whose ratio is peer time / zoo time against
   the fastest peer of the row (>= 1.0: the zoo is at least as fast).

    .venv/bin/python benchmarks/speed_board.py                       # everything -> results/speed_board.csv
    .venv/bin/python benchmarks/speed_board.py --quick               # small models, smoke test
    .venv/bin/python benchmarks/speed_board.py --archs swin --rows train_b8 --dtypes bf16 --threads 1 --clock cpu
    .venv/bin/python benchmarks/speed_board.py --markdown            # README table from results/speed_board.csv

Milliseconds from a shared 2-core machine are relative only: compare the ratios.
"""

import argparse
import csv
import gc
import importlib
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_OUTPUT = RESULTS / "speed_board.csv"
QUICK_OUTPUT = RESULTS / "speed_board_quick.csv"
DEFAULT_ROWS = ("infer_b1", "infer_b8", "train_b8")
DTYPES = ("fp32", "bf16")
PERTURB_STD = 0.02


# ---------------------------------------------------------------------------------------------------------------
# The architectures: data, plus one builder per peer library
# ---------------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Size:
    """One model size of an architecture: what each peer is built with, and how the zoo config is made."""

    label: str
    img_size: int
    num_labels: int
    peer_kwargs: dict  # peer source -> builder kwargs
    zoo_variant: str | None = None  # registered variant whose config the zoo model uses (else read off the weights)
    zoo_overrides: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Peer:
    source: str  # "timm" or "transformers": also the converter's source name
    # (size kwargs, num_labels, primary peer's state dict or None) -> model with random (or the primary's) weights
    build: Callable
    name: Callable  # size kwargs -> model name for the CSV


@dataclass(frozen=True)
class ArchSpec:
    arch: str  # zoo architecture name (registry and converter)
    label: str
    peers: tuple[Peer, ...]  # the first is the primary: it gets seeded random weights, the others copy them
    sizes: dict[str, Size]
    parity_atol: float = 1e-4
    grad_rtol: float = 1e-3  # max |grad diff| / max |grad|, per tensor (see check_train_parity)


def _perturb(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn(param.shape, generator=generator) * PERTURB_STD)
    return model


def build_timm(kwargs: dict, num_labels: int, source_sd=None, fused_attn: bool | None = None):
    import timm

    kwargs = dict(kwargs)
    name = kwargs.pop("model_name")
    model = timm.create_model(name, pretrained=False, num_classes=num_labels, drop_path_rate=0.0, **kwargs)
    if fused_attn is not None:  # default: the library's own choice (eager for Swin, SDPA for CrossViT)
        for module in model.modules():
            if hasattr(module, "fused_attn"):
                module.fused_attn = fused_attn
    if source_sd is not None:
        model.load_state_dict(source_sd)
    return model


def swin_timm_to_transformers(timm_sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """timm Swin state dict -> transformers v5 names (q/k/v split; merging moves to the previous stage)."""
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


def build_transformers_swin(kwargs: dict, num_labels: int, source_sd=None, fused_attn=None):
    from transformers import SwinConfig, SwinForImageClassification

    # SwinConfig() is Swin-T (embed 96, depths 2-2-6-2, heads 3-6-12-24, window 7)
    model = SwinForImageClassification(SwinConfig(num_labels=num_labels, drop_path_rate=0.0, **kwargs))
    if source_sd is not None:
        missing, unexpected = model.load_state_dict(swin_timm_to_transformers(source_sd), strict=False)
        missing = [k for k in missing if not k.endswith("relative_position_index")]
        if missing or unexpected:
            raise RuntimeError(f"transformers Swin load: missing {missing[:5]}, unexpected {unexpected[:5]}")
    return model


def build_transformers_cvt(kwargs: dict, num_labels: int, source_sd=None, fused_attn=None):
    from transformers import CvtConfig, CvtForImageClassification

    # CvtConfig() is CvT-13 (embed 64-192-384, depths 1-2-10, heads 1-3-6) at 224 px. transformers 5.23 indexes
    # a stage's drop-path list by the stage number, so stage i needs depth > i
    depth = kwargs.get("depth", [1, 2, 10])
    model = CvtForImageClassification(CvtConfig(num_labels=num_labels, drop_path_rate=[0.0] * len(depth), **kwargs))
    if source_sd is not None:
        model.load_state_dict(source_sd)
    return model


def _timm_name(kwargs: dict) -> str:
    extra = {k: v for k, v in kwargs.items() if k != "model_name"}
    return kwargs["model_name"] + (f"({', '.join(f'{k}={v}' for k, v in extra.items())})" if extra else "")


def _transformers_name(cls_name: str) -> Callable:
    def name(kwargs: dict) -> str:
        return f"{cls_name}({', '.join(f'{k}={v}' for k, v in kwargs.items())})"
    return name


TIMM = "timm"
TRANSFORMERS = "transformers"

ARCHS: dict[str, ArchSpec] = {spec.arch: spec for spec in (
    ArchSpec(
        arch="swin", label="Swin",
        peers=(Peer(TIMM, build_timm, _timm_name),
               Peer(TRANSFORMERS, build_transformers_swin, _transformers_name("SwinForImageClassification"))),
        sizes={
            "standard": Size("Swin-T", 224, 1000, zoo_variant="swin_tiny_patch4_window7_224.ms_in1k",
                             peer_kwargs={TIMM: {"model_name": "swin_tiny_patch4_window7_224"}, TRANSFORMERS: {}},
                             zoo_overrides={"drop_path_rate": 0.0}),
            "quick": Size("Swin (quick)", 64, 10, zoo_overrides={"image_size": 64, "drop_path_rate": 0.0},
                          peer_kwargs={
                              TIMM: {"model_name": "swin_tiny_patch4_window7_224", "img_size": 64, "embed_dim": 32,
                                     "depths": (2, 2), "num_heads": (2, 4), "window_size": 4},
                              TRANSFORMERS: {"image_size": 64, "embed_dim": 32, "depths": [2, 2],
                                             "num_heads": [2, 4], "window_size": 4}}),
        },
    ),
    ArchSpec(
        arch="crossvit", label="CrossViT",
        peers=(Peer(TIMM, build_timm, _timm_name),),
        sizes={
            "standard": Size("CrossViT-S", 240, 1000, zoo_variant="crossvit_small_240.in1k",
                             peer_kwargs={TIMM: {"model_name": "crossvit_small_240"}},
                             zoo_overrides={"drop_path_rate": 0.0}),
            # branches of 120 and 112 px (timm scales the second by 224/240) with 12 and 16 px patches
            "quick": Size("CrossViT (quick)", 120, 10, zoo_overrides={"num_heads": [2, 2], "drop_path_rate": 0.0},
                          peer_kwargs={TIMM: {"model_name": "crossvit_tiny_240", "img_size": 120,
                                              "embed_dim": [32, 64], "depth": [[1, 1, 0], [1, 1, 0]],
                                              "num_heads": [2, 2]}}),
        },
    ),
    ArchSpec(
        arch="cvt", label="CvT",
        peers=(Peer(TRANSFORMERS, build_transformers_cvt, _transformers_name("CvtForImageClassification")),),
        sizes={
            # the zoo config comes from transformers' (GELU, its LayerNorm eps), not the official variant's
            "standard": Size("CvT-13", 224, 1000, peer_kwargs={TRANSFORMERS: {}}, zoo_overrides={"image_size": 224}),
            "quick": Size("CvT (quick)", 64, 10, zoo_overrides={"image_size": 64},
                          peer_kwargs={TRANSFORMERS: {"embed_dim": [16, 32, 48], "depth": [1, 2, 3],
                                                      "num_heads": [1, 2, 3]}}),
        },
    ),
)}


def arch_available(arch: str) -> str | None:
    """None if the zoo package and its converter import, else why not."""
    try:
        importlib.import_module(f"hf_vision_zoo.models.{arch}")
        from hf_vision_zoo import conversion, registry

        registry.get_architecture(arch)
        if arch not in conversion.CONVERTERS:
            return f"no converter for {arch!r} in hf_vision_zoo.conversion"
    except Exception as error:  # noqa: BLE001 - any failure means "not ready"
        return f"{type(error).__name__}: {error}"
    return None


# ---------------------------------------------------------------------------------------------------------------
# Models with identical weights, and parity
# ---------------------------------------------------------------------------------------------------------------

def zoo_config(spec: ArchSpec, size: Size, primary: torch.nn.Module, source: str):
    """The registered variant's config; else, for a transformers peer, its config through the zoo's
    `config_from_transformers`; else the config the zoo's converter reads off the weights."""
    from hf_vision_zoo import conversion, registry

    if size.zoo_variant is not None:
        return registry.get_config(size.zoo_variant, num_labels=size.num_labels, **size.zoo_overrides)
    if source == TRANSFORMERS:
        return conversion.CONVERTERS[spec.arch].config_from_transformers(
            primary.config.to_dict(), num_labels=size.num_labels, **size.zoo_overrides)
    return conversion.build_config(spec.arch, primary.state_dict(), source, num_labels=size.num_labels,
                                   **size.zoo_overrides)


def build_models(spec: ArchSpec, size: Size, seed: int, fused_attn: bool | None = None) -> dict[str, torch.nn.Module]:
    """{"zoo": ..., <peer source>: ...} all holding the same (perturbed random) weights, in eval mode."""
    from hf_vision_zoo.conversion import CONVERTERS, convert_to_model

    primary, *others = spec.peers
    torch.manual_seed(seed)
    models = {primary.source: _perturb(primary.build(size.peer_kwargs[primary.source], size.num_labels,
                                                     None, fused_attn), seed)}
    primary_sd = models[primary.source].state_dict()
    config = zoo_config(spec, size, models[primary.source], primary.source)
    zoo = convert_to_model(spec.arch, primary_sd, config, primary.source)
    zoo_sd = zoo.state_dict()
    for peer in others:
        model = peer.build(size.peer_kwargs[peer.source], size.num_labels, primary_sd, fused_attn)
        # the zoo's converter must turn this peer's tensors into exactly the zoo model's
        converted = CONVERTERS[spec.arch].convert_state_dict(model.state_dict(), config, peer.source)
        for key, value in converted.items():
            if key in zoo_sd and not torch.equal(zoo_sd[key], value):
                raise AssertionError(f"{peer.source} weights differ from the zoo's at {key}")
        models[peer.source] = model
    return {"zoo": zoo, **models}


def logits_of(output) -> torch.Tensor:
    return output if isinstance(output, torch.Tensor) else output.logits


def check_output_parity(models: dict, size: Size, atol: float, seed: int) -> dict[str, float]:
    """Max |logit difference| of every peer against the zoo (fp32, eval); raises above `atol`."""
    torch.manual_seed(seed + 1)
    pixel_values = torch.randn(2, 3, size.img_size, size.img_size)
    with torch.inference_mode():
        logits = {impl: logits_of(model.eval()(pixel_values)) for impl, model in models.items()}
    diffs = {}
    for impl in models:
        if impl == "zoo":
            continue
        diffs[impl] = (logits["zoo"] - logits[impl]).abs().max().item()
        if not diffs[impl] <= atol:
            raise AssertionError(f"zoo vs {impl}: max |logit diff| {diffs[impl]:.2e} > {atol}: not the same model")
    return diffs


def _grads_in_zoo_names(arch: str, impl: str, model: torch.nn.Module, config) -> dict[str, torch.Tensor]:
    """The model's parameter gradients, renamed (and q/k/v-fused) by the zoo converter like its weights."""
    if impl == "zoo":
        return {k: p.grad for k, p in model.named_parameters()}
    from hf_vision_zoo.conversion import CONVERTERS

    grads = {k: p.grad for k, p in model.named_parameters()}
    # buffers keep their values so the converter sees a complete state dict; only parameters are compared
    full = {k: grads.get(k, v) for k, v in model.state_dict().items()}
    return CONVERTERS[arch].convert_state_dict(full, config, impl)


def check_train_parity(spec: ArchSpec, models: dict, size: Size, seed: int) -> dict[str, dict[str, float]]:
    """One fp32 training step's loss and gradients, every peer vs the zoo; raises beyond the loose tolerances."""
    torch.manual_seed(seed + 2)
    pixel_values = torch.randn(2, 3, size.img_size, size.img_size)
    labels = torch.randint(0, size.num_labels, (2,))
    losses, grads = {}, {}
    for impl, model in models.items():
        model.train()
        model.zero_grad(set_to_none=True)
        loss = F.cross_entropy(logits_of(model(pixel_values)), labels)
        loss.backward()
        losses[impl] = loss.item()
        grads[impl] = _grads_in_zoo_names(spec.arch, impl, model, models["zoo"].config)
        model.zero_grad(set_to_none=True)
        model.eval()
    result = {}
    for impl in models:
        if impl == "zoo":
            continue
        loss_diff = abs(losses["zoo"] - losses[impl])
        if loss_diff > 1e-4 * max(1.0, abs(losses["zoo"])):
            raise AssertionError(f"zoo vs {impl}: training loss {losses['zoo']:.6f} vs {losses[impl]:.6f}")
        if missing := [key for key, grad in grads["zoo"].items() if grad is None]:
            raise AssertionError(f"zoo parameters got no gradient: {missing[:5]}")
        # a gradient that is zero in exact arithmetic (e.g. a key bias: softmax ignores it) is rounding noise in
        # both, so each tensor's scale is floored at 1e-3 of the model's largest gradient
        floor = 1e-3 * max(grad.abs().max().item() for grad in grads["zoo"].values())
        worst, worst_key = 0.0, None
        for key, grad in grads["zoo"].items():
            other = grads[impl].get(key)
            if other is None:
                raise AssertionError(f"{impl} has no gradient for zoo parameter {key}")
            rel = (grad - other).abs().max().item() / max(grad.abs().max().item(), floor, 1e-12)
            if rel > worst:
                worst, worst_key = rel, key
        if worst > spec.grad_rtol:
            raise AssertionError(f"zoo vs {impl}: gradient of {worst_key} differs by {worst:.2e} (relative) > "
                                 f"{spec.grad_rtol}")
        result[impl] = {"loss_diff": loss_diff, "grad_max_rel_diff": worst}
    return result


# ---------------------------------------------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------------------------------------------

def parse_row(row: str) -> tuple[str, int]:
    match = re.fullmatch(r"(infer|train)_b(\d+)", row)
    if not match or int(match.group(2)) < 1:
        raise ValueError(f"row {row!r}: expected infer_b<batch> or train_b<batch>, e.g. infer_b1, train_b8")
    return match.group(1), int(match.group(2))


def autocast_context(dtype: str):
    if dtype == "fp32":
        return torch.autocast("cpu", enabled=False)
    return torch.autocast("cpu", dtype={"bf16": torch.bfloat16}[dtype])


def make_step(mode: str, model: torch.nn.Module, batch: int, size: Size, dtype: str, seed: int) -> Callable:
    """A zero-argument callable running one inference pass or one training step (forward + cross-entropy backward
    + AdamW step) of `model` on a fixed random batch."""
    generator = torch.Generator().manual_seed(seed + 3)
    pixel_values = torch.randn(batch, 3, size.img_size, size.img_size, generator=generator)
    if mode == "infer":
        model.eval()

        def infer():
            with torch.inference_mode(), autocast_context(dtype):
                model(pixel_values)
        return infer
    model.train()
    labels = torch.randint(0, size.num_labels, (batch,), generator=generator)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def train():
        with autocast_context(dtype):
            loss = F.cross_entropy(logits_of(model(pixel_values)).float(), labels)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return train


def time_interleaved(steps: dict[str, Callable], warmup: int, repeats: int, inner: int) -> dict[str, dict]:
    """Per implementation, `repeats` samples of wall and process-CPU milliseconds per step. Each repeat runs every
    implementation once (a sample is the mean of `inner` back-to-back steps), rotating the order."""
    names = list(steps)
    samples = {name: {"wall": [], "cpu": []} for name in names}
    for _ in range(warmup):
        for name in names:
            steps[name]()
    for rep in range(repeats):
        order = names[rep % len(names):] + names[:rep % len(names)]
        for name in order:
            wall, cpu = time.perf_counter(), time.process_time()
            for _ in range(inner):
                steps[name]()
            samples[name]["cpu"].append((time.process_time() - cpu) * 1000 / inner)
            samples[name]["wall"].append((time.perf_counter() - wall) * 1000 / inner)
    return samples


def _proc_status_mb(field_name: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return None


def step_memory_mb(step: Callable) -> float | None:
    """How far two steps raise the process's peak resident size above its current size (Linux only)."""
    gc.collect()
    before = _proc_status_mb("VmRSS")
    try:  # reset the high-water mark to the current size
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return None
    step()
    step()
    peak = _proc_status_mb("VmHWM")
    return None if before is None or peak is None else round(max(0.0, peak - before), 1)


def run_config(cfg: dict) -> dict:
    """Build, check parity and time one (arch, row, dtype) configuration; returns a JSON-able dict."""
    torch.set_num_threads(cfg["threads"])
    spec = ARCHS[cfg["arch"]]
    size = spec.sizes[cfg["size"]]
    mode, batch = parse_row(cfg["row"])
    load_start = os.getloadavg()[0]
    models = build_models(spec, size, cfg["seed"], cfg["timm_fused_attn"])
    parity = check_output_parity(models, size, spec.parity_atol, cfg["seed"])
    train_parity = check_train_parity(spec, models, size, cfg["seed"]) if mode == "train" else {}
    info = {
        "params": {impl: sum(p.numel() for p in m.parameters()) for impl, m in models.items()},
        "attn_impl": {impl: _attn_impl(impl, m) for impl, m in models.items()},
        "names": {"zoo": size.zoo_variant or f"{spec.arch} (config read off the {spec.peers[0].source} weights)",
                  **{p.source: p.name(size.peer_kwargs[p.source]) for p in spec.peers}},
    }
    if cfg.get("memory_probe"):
        impl = cfg["memory_probe"]
        step = make_step(mode, models[impl], batch, size, cfg["dtype"], cfg["seed"])
        for other in [k for k in models if k != impl]:
            del models[other]
        return {"step_rss_mb": step_memory_mb(step)}
    steps = {impl: make_step(mode, m, batch, size, cfg["dtype"], cfg["seed"]) for impl, m in models.items()}
    inner = cfg["inner"] or (max(1, 8 // batch) if mode == "infer" else 1)
    samples = time_interleaved(steps, cfg["warmup"], cfg["repeats"], inner)
    return {"samples": samples, "parity": parity, "train_parity": train_parity, "inner": inner,
            "torch_threads": torch.get_num_threads(), "load_start": load_start, "load_end": os.getloadavg()[0],
            **info}


def _attn_impl(impl: str, model: torch.nn.Module) -> str:
    if impl == TIMM:
        flags = {getattr(m, "fused_attn") for m in model.modules() if hasattr(m, "fused_attn")}
        return "sdpa" if flags == {True} else "eager" if flags == {False} else "mixed" if flags else "n/a"
    return getattr(model.config, "_attn_implementation", None) or "eager"


def run_config_in_subprocess(cfg: dict) -> dict:
    """`run_config` in a fresh interpreter, so the heap one configuration leaves behind can't favour anyone next."""
    cmd = [sys.executable, __file__, "--worker", json.dumps(cfg)]
    result = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"benchmark worker for {cfg} failed (exit {result.returncode})")
    return json.loads(result.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------------------------

CSV_COLUMNS = [
    "arch", "size", "model", "impl", "mode", "batch_size", "img_size", "dtype", "time_ms", "samples_per_sec",
    "ratio", "fastest_peer", "wall_ms", "wall_ms_min", "wall_ms_max", "cpu_ms", "cpu_ms_min", "cpu_ms_max",
    "clock", "param_count", "attn_impl", "parity_max_abs_diff", "train_loss_diff", "train_grad_max_rel_diff",
    "step_rss_mb", "threads", "torch_threads", "loadavg_start", "loadavg_end", "repeats", "warmup", "inner",
    "cpu", "torch", "transformers", "timm",
]


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def result_rows(cfg: dict, result: dict, memory: dict, versions: dict) -> list[dict]:
    """CSV rows (one per implementation) of one configuration. `ratio`: on a peer row its time / the zoo's; on the
    zoo row the fastest peer's time / the zoo's (>= 1: the zoo is at least as fast as every peer)."""
    spec, size = ARCHS[cfg["arch"]], ARCHS[cfg["arch"]].sizes[cfg["size"]]
    mode, batch = parse_row(cfg["row"])
    med = {impl: {clock: statistics.median(s[clock]) for clock in ("wall", "cpu")}
           for impl, s in result["samples"].items()}
    time_ms = {impl: m[cfg["clock"]] for impl, m in med.items()}
    peers = [impl for impl in time_ms if impl != "zoo"]
    fastest = min(peers, key=time_ms.get)
    rows = []
    for impl, samples in result["samples"].items():
        train = result["train_parity"].get(impl, {})
        rows.append({
            "arch": spec.arch, "size": size.label, "model": result["names"][impl], "impl": impl, "mode": mode,
            "batch_size": batch, "img_size": size.img_size, "dtype": cfg["dtype"], "time_ms": round(time_ms[impl], 2),
            "samples_per_sec": round(1000 * batch / time_ms[impl], 2),
            "ratio": round((time_ms[fastest] if impl == "zoo" else time_ms[impl]) / time_ms["zoo"], 3),
            "fastest_peer": fastest if impl == "zoo" else "",
            "wall_ms": round(med[impl]["wall"], 2), "wall_ms_min": round(min(samples["wall"]), 2),
            "wall_ms_max": round(max(samples["wall"]), 2), "cpu_ms": round(med[impl]["cpu"], 2),
            "cpu_ms_min": round(min(samples["cpu"]), 2), "cpu_ms_max": round(max(samples["cpu"]), 2),
            "clock": cfg["clock"], "param_count": result["params"][impl], "attn_impl": result["attn_impl"][impl],
            "parity_max_abs_diff": "" if impl == "zoo" else f"{result['parity'][impl]:.2e}",
            "train_loss_diff": f"{train['loss_diff']:.2e}" if train else "",
            "train_grad_max_rel_diff": f"{train['grad_max_rel_diff']:.2e}" if train else "",
            "step_rss_mb": memory.get(impl, ""), "threads": cfg["threads"],
            "torch_threads": result["torch_threads"], "loadavg_start": round(result["load_start"], 2),
            "loadavg_end": round(result["load_end"], 2), "repeats": cfg["repeats"], "warmup": cfg["warmup"],
            "inner": result["inner"], **versions,
        })
    return rows


def _row_label(mode: str, batch: int) -> str:
    return f"{'inference' if mode == 'infer' else 'train step'}, batch {batch}"


def markdown_table(rows: list[dict]) -> str:
    """The README table: one line per (model, row, dtype) with each library's median ms and the zoo's ratio
    against the fastest peer (peer time / zoo time; >= 1.0 means the zoo is at least as fast)."""
    impls = [impl for impl in ("zoo", TIMM, TRANSFORMERS) if any(r["impl"] == impl for r in rows)]
    lines = ["| model | step | dtype | " + " | ".join(f"{impl} ms" for impl in impls)
             + " | fastest peer / zoo |", "|---|---|---|" + "---|" * (len(impls) + 1)]
    groups: dict[tuple, dict[str, dict]] = {}
    for r in rows:
        key = (r["arch"], r["size"], r["mode"], int(r["batch_size"]), r["dtype"])
        groups.setdefault(key, {})[r["impl"]] = r
    for (_, size, mode, batch, dtype), group in groups.items():
        times = [f"{float(group[i]['time_ms']):.1f}" if i in group else "-" for i in impls]
        zoo = group["zoo"]
        ratio = float(zoo["ratio"])
        ratio_text = f"{ratio:.2f} ({zoo['fastest_peer']})"
        lines.append(f"| {size} | {_row_label(mode, batch)} | {dtype} | " + " | ".join(times)
                     + f" | {'**' + ratio_text + '**' if ratio >= 1.0 else ratio_text} |")
    return "\n".join(lines)


def print_summary(rows: list[dict]) -> None:
    header = f"{'model':<14}{'step':<22}{'dtype':<6}{'impl':<13}{'ms':>9}{'min-max':>17}{'cpu ms':>9}{'ratio':>7}"
    print(header)
    print("-" * len(header))
    for r in rows:
        spread = f"{r['wall_ms_min']:.1f}-{r['wall_ms_max']:.1f}" if r["clock"] == "wall" else \
            f"{r['cpu_ms_min']:.1f}-{r['cpu_ms_max']:.1f}"
        print(f"{r['size']:<14}{_row_label(r['mode'], r['batch_size']):<22}{r['dtype']:<6}{r['impl']:<13}"
              f"{r['time_ms']:>9.1f}{spread:>17}{r['cpu_ms']:>9.1f}{r['ratio']:>7.3f}")


def versions() -> dict:
    import timm
    import transformers

    return {"cpu": cpu_name(), "torch": torch.__version__, "transformers": transformers.__version__,
            "timm": timm.__version__}


def write_csv(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _csv_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archs", default="all", help=f"comma-separated, from {', '.join(ARCHS)}; default all "
                        "whose zoo package imports")
    parser.add_argument("--rows", default=",".join(DEFAULT_ROWS),
                        help="comma-separated infer_b<N> / train_b<N> (default infer_b1,infer_b8,train_b8)")
    parser.add_argument("--dtypes", default="fp32,bf16", help="fp32 and/or bf16 (CPU autocast); default both")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads in every worker (default 2)")
    parser.add_argument("--repeats", type=int, default=None, help="timed samples per implementation (default 11; "
                        "3 with --quick); the median is reported")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps per implementation first "
                        "(default 2; 1 with --quick)")
    parser.add_argument("--inner", type=int, default=None,
                        help="steps averaged per sample (default: 8 // batch for inference, 1 for training)")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="which time the ratios use; both are recorded. 'cpu' is this process's CPU time, "
                             "with --threads 1 barely disturbed by other programs on a shared machine")
    parser.add_argument("--quick", action="store_true",
                        help="small models (64-80 px, 2 stages) and fewer repeats: a smoke test in seconds")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timm-fused-attn", choices=("default", "on", "off"), default="default",
                        help="timm's attention: its own default per model (eager for Swin, SDPA for CrossViT), "
                             "or force SDPA on / off")
    parser.add_argument("--memory", action=argparse.BooleanOptionalAction, default=False,
                        help="also measure each implementation's peak RSS increase over two steps (one extra "
                             "fresh process per implementation and configuration)")
    parser.add_argument("--same-process", action="store_true",
                        help="run every configuration in this process instead of a fresh process each")
    parser.add_argument("--output", type=Path, default=None,
                        help=f"CSV path (default {DEFAULT_OUTPUT}; {QUICK_OUTPUT} with --quick)")
    parser.add_argument("--markdown", nargs="?", const="", default=None, metavar="CSV",
                        help="print the README table of CSV (default: the --output / default CSV) and exit")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    return parser


def main(argv=None) -> list[dict]:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(run_config(json.loads(args.worker))))
        return []
    output = args.output or (QUICK_OUTPUT if args.quick else DEFAULT_OUTPUT)
    if args.markdown is not None:
        print(markdown_table(read_csv(Path(args.markdown) if args.markdown else output)))
        return []

    requested = list(ARCHS) if args.archs == "all" else _csv_list(args.archs)
    if unknown := [a for a in requested if a not in ARCHS]:
        parser.error(f"unknown architectures {unknown}; known: {', '.join(ARCHS)}")
    dtypes = _csv_list(args.dtypes)
    if unknown := [d for d in dtypes if d not in DTYPES]:
        parser.error(f"unknown dtypes {unknown}; use fp32 and/or bf16")
    rows_wanted = _csv_list(args.rows)
    for row in rows_wanted:
        try:
            parse_row(row)
        except ValueError as error:
            parser.error(str(error))
    if args.threads < 1:
        parser.error("--threads must be >= 1")
    repeats = args.repeats or (3 if args.quick else 11)
    warmup = args.warmup if args.warmup is not None else (1 if args.quick else 2)
    if repeats < 1 or warmup < 0 or (args.inner is not None and args.inner < 1):
        parser.error("--repeats and --inner must be >= 1, --warmup >= 0")

    archs = []
    for arch in requested:
        if reason := arch_available(arch):
            if args.archs != "all":
                parser.error(f"architecture {arch!r} is not available: {reason}")
            print(f"skipping {arch}: {reason}")
        else:
            archs.append(arch)
    if not archs:
        parser.error("no architecture available")

    run = run_config if args.same_process else run_config_in_subprocess
    fused = {"default": None, "on": True, "off": False}[args.timm_fused_attn]
    info = versions()
    print(f"torch {info['torch']}, transformers {info['transformers']}, timm {info['timm']}, {info['cpu']}; "
          f"{args.threads} thread(s), {args.clock} clock, {repeats} repeats after {warmup} warm-up steps, "
          f"load average {os.getloadavg()[0]:.2f}")
    all_rows = []
    for arch in archs:
        for row in rows_wanted:
            for dtype in dtypes:
                cfg = {"arch": arch, "size": "quick" if args.quick else "standard", "row": row, "dtype": dtype,
                       "threads": args.threads, "repeats": repeats, "warmup": warmup, "inner": args.inner,
                       "clock": args.clock, "seed": args.seed, "timm_fused_attn": fused}
                result = run(cfg)
                memory = {}
                if args.memory:
                    for impl in result["samples"]:
                        memory[impl] = run_config_in_subprocess({**cfg, "memory_probe": impl})["step_rss_mb"]
                rows = result_rows(cfg, result, memory, info)
                parity = ", ".join(f"{impl} {d:.1e}" for impl, d in result["parity"].items())
                train = "".join(f"; train {impl}: loss diff {t['loss_diff']:.1e}, grad rel diff "
                                f"{t['grad_max_rel_diff']:.1e}" for impl, t in result["train_parity"].items())
                print(f"\n{arch} {row} {dtype}: parity OK (max |logit diff| vs zoo: {parity}{train}); load "
                      f"{result['load_start']:.2f} -> {result['load_end']:.2f}, torch threads "
                      f"{result['torch_threads']}")
                print_summary(rows)
                all_rows.extend(rows)
                write_csv(output, all_rows)  # after every configuration, so a long run is never lost
    print(f"\nwrote {output}\n")
    print(markdown_table(all_rows))
    return all_rows


if __name__ == "__main__":
    main()
