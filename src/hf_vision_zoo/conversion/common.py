"""What every converter shares: reading checkpoint files safely, strict loading, and writing a complete model folder
atomically (a failed conversion leaves nothing at the output path)."""

import os
import shutil
import tempfile
import zipfile
from pathlib import Path

import torch
from safetensors.torch import load_file as load_safetensors


class ConversionError(ValueError):
    """A checkpoint that cannot become the requested zoo model (wrong architecture, format or keys)."""


def check_source(source: str, sources: tuple[str, ...]) -> None:
    if source not in sources:
        raise ConversionError(f"Unknown source format {source!r}; expected one of {', '.join(sources)}")


def load_state_dict_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a `.safetensors`, `.pth`/`.pt` or `.bin` state dict, unwrapping `{"model": ...}` / `{"state_dict": ...}`.

    Pickled files are read with `weights_only=True`, so a checkpoint cannot run code on load.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Checkpoint {path} does not exist")
    if path.stat().st_size == 0:
        raise ConversionError(f"Checkpoint {path} is empty")
    try:
        if path.suffix == ".safetensors":
            state = load_safetensors(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, OSError, EOFError, zipfile.BadZipFile, ValueError) as err:
        if isinstance(err, ConversionError):
            raise
        raise ConversionError(f"Could not read checkpoint {path} (truncated or not a state dict?): {err}") from err
    except Exception as err:  # safetensors raises its own error type on corrupt headers
        raise ConversionError(f"Could not read checkpoint {path}: {err}") from err
    for wrapper in ("model", "state_dict", "model_state", "model_state_dict"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConversionError(f"Checkpoint {path} does not hold a state dict of tensors")
    return state


def load_strict(model: torch.nn.Module, state_dict: dict[str, torch.Tensor]) -> torch.nn.Module:
    """Load with zero missing and zero unexpected keys and matching shapes, or raise a ConversionError saying which."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    mismatched = [f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(expected[k].shape)}"
                  for k in expected if k in state_dict and state_dict[k].shape != expected[k].shape]
    if missing or unexpected or mismatched:
        def show(items):
            return ", ".join(items[:8]) + (f" (+{len(items) - 8} more)" if len(items) > 8 else "")
        parts = [f"{len(missing)} missing: {show(missing)}" if missing else "",
                 f"{len(unexpected)} unexpected: {show(unexpected)}" if unexpected else "",
                 f"{len(mismatched)} shape mismatches: {show(mismatched)}" if mismatched else ""]
        raise ConversionError("Converted checkpoint does not fit the model config: "
                              + "; ".join(p for p in parts if p))
    model.load_state_dict(state_dict, strict=True)
    return model


def save_atomically(output_dir: str | os.PathLike, *savables, overwrite: bool = False) -> Path:
    """`save_pretrained` every object into a temporary sibling folder, then rename it to `output_dir`."""
    output_dir = Path(output_dir)
    if output_dir.exists() and any(output_dir.iterdir()) and not overwrite:
        raise FileExistsError(f"{output_dir} exists and is not empty; pass overwrite=True (--overwrite) to replace it")
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.tmp-", dir=output_dir.parent))
    try:
        for obj in savables:
            obj.save_pretrained(tmp)
        if output_dir.exists():
            shutil.rmtree(output_dir)
        os.replace(tmp, output_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return output_dir
