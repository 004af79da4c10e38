"""The zoo's common model tester (DESIGN.md §6, ANCHORS.md §3c).

Every architecture registered in `hf_vision_zoo.registry` is tested by `tests/test_common_models.py` through
`ZooModelTester`, using the architecture's `tiny_config`. A new model gets all of these checks by being registered;
nothing here names a particular architecture. What a check expects is derived from the config
(`stage_names`, `num_heads`, `num_labels`, `patch_size`, ...) and from the model classes' own attributes
(`channels` of a backbone, `base_model_prefix`, ...), the way transformers' `ModelTesterMixin` and timm's
`tests/test_models.py` do it.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import math
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from unittest import mock

import torch
from torch import nn
from transformers import initialization as hf_init
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.utils import ModelOutput

from hf_vision_zoo import registry

# The two task heads with an Auto class that can load them from a folder; the backbone is covered separately.
FEATURE_EXTRACTION = "feature-extraction"
IMAGE_CLASSIFICATION = "image-classification"
BACKBONE = "backbone"
PRETRAINING = "pretraining"

MAX_BLOCKS_PER_STAGE = 2
MAX_IMAGE_SIDE = 64
MAX_PARAMETERS = 1_000_000


def architectures() -> list[str]:
    """Every registered architecture (the parametrisation of the common tests)."""
    return registry.list_architectures()


def architecture_tasks() -> list[tuple[str, str]]:
    """`(architecture, task)` for every model class of every registered architecture."""
    return [(name, task) for name in architectures() for task in registry.get_architecture(name).model_classes
            if task != PRETRAINING]  # pre-training models draw random masks; tests/test_common_pretraining.py


# ----------------------------------------------------------------------------------------------------------------
# output helpers
# ----------------------------------------------------------------------------------------------------------------


def flatten_output(output, prefix: str = "") -> list[tuple[str, torch.Tensor]]:
    """All tensors of a model output (a `ModelOutput`, a tuple, or nested tuples of tensors), with their paths."""
    if isinstance(output, torch.Tensor):
        return [(prefix or "output", output)]
    if isinstance(output, ModelOutput):
        items = [(f"{prefix}{key}", value) for key, value in output.items()]
    elif isinstance(output, (tuple, list)):
        items = [(f"{prefix}[{i}]", value) for i, value in enumerate(output)]
    else:
        raise TypeError(f"unexpected output type {type(output).__name__} at {prefix!r}")
    flat = []
    for name, value in items:
        if value is None:
            continue
        flat.extend(flatten_output(value, name + ("." if not isinstance(value, torch.Tensor) else "")))
    return flat


def assert_outputs_close(actual, expected, atol: float = 0.0, rtol: float = 0.0, what: str = "outputs") -> None:
    """Same structure (same tensor paths) and values within `atol`/`rtol` everywhere."""
    a, e = flatten_output(actual), flatten_output(expected)
    names_a, names_e = [n for n, _ in a], [n for n, _ in e]
    assert names_a == names_e, f"{what}: different structure {names_a} vs {names_e}"
    for (name, x), (_, y) in zip(a, e):
        assert x.shape == y.shape, f"{what}: {name} has shape {tuple(x.shape)} vs {tuple(y.shape)}"
        torch.testing.assert_close(x, y, atol=atol, rtol=rtol, msg=lambda m, n=name: f"{what}: {n} differs. {m}")


def assert_tuple_matches_dict(as_tuple, as_dict: ModelOutput) -> None:
    """`return_dict=False` gives a plain tuple holding exactly the non-None fields of the dict output, in order."""
    assert isinstance(as_tuple, tuple) and not isinstance(as_tuple, ModelOutput), (
        f"return_dict=False must give a plain tuple, got {type(as_tuple).__name__}"
    )
    assert isinstance(as_dict, ModelOutput), f"return_dict=True must give a ModelOutput, got {type(as_dict).__name__}"
    expected = as_dict.to_tuple()
    assert len(as_tuple) == len(expected), f"tuple has {len(as_tuple)} entries, the dict {len(expected)}"
    assert_outputs_close(as_tuple, expected, what="tuple vs dict")


def first_tensor(output) -> torch.Tensor:
    """The main tensor of an output: logits, last_hidden_state or the first feature map."""
    for key in ("logits", "last_hidden_state", "feature_maps"):
        value = getattr(output, key, None)
        if value is not None:
            return value[0] if isinstance(value, tuple) else value
    raise AssertionError(f"output {type(output).__name__} has no logits / last_hidden_state / feature_maps")


# ----------------------------------------------------------------------------------------------------------------
# initialisation helpers (what transformers' test_can_init_all_missing_weights / test_init_weights_can_init_buffers do)
# ----------------------------------------------------------------------------------------------------------------

_RANDOM_INIT_FUNCTIONS = ("uniform_", "normal_", "trunc_normal_", "xavier_uniform_", "xavier_normal_",
                          "kaiming_uniform_", "kaiming_normal_", "orthogonal_", "sparse_")


@contextlib.contextmanager
def seeded_weight_init(seed: int = 0) -> Iterator[None]:
    """Make every random initialiser reseed the RNG first, so a tensor's initial value depends only on its shape and
    init call, not on the order in which modules are initialised. Then a model built by `__init__` and one built on
    the meta device by `from_pretrained(None, state_dict={})` must be bit-identical iff `_init_weights` (re)creates
    every parameter and buffer.

    transformers' init wrappers (`transformers.initialization.*`) call the primitives stored in
    `TORCH_INIT_FUNCTIONS`, and PyTorch modules call `torch.nn.init.*`; both are patched.
    """
    originals = dict(hf_init.TORCH_INIT_FUNCTIONS)
    torch_originals = {name: getattr(torch.nn.init, name) for name in _RANDOM_INIT_FUNCTIONS}

    def reseeded(function):
        def wrapper(tensor, *args, **kwargs):
            generator = kwargs.get("generator")
            (generator if generator is not None else torch.random.default_generator).manual_seed(seed)
            return function(tensor, *args, **kwargs)

        return wrapper

    try:
        for name in _RANDOM_INIT_FUNCTIONS:
            hf_init.TORCH_INIT_FUNCTIONS[name] = reseeded(originals[name])
            setattr(torch.nn.init, name, reseeded(torch_originals[name]))
        yield
    finally:
        hf_init.TORCH_INIT_FUNCTIONS.update(originals)
        for name, function in torch_originals.items():
            setattr(torch.nn.init, name, function)


def tensors_on_meta(model: nn.Module) -> list[str]:
    named = list(model.named_parameters()) + list(model.named_buffers())
    return [name for name, tensor in named if tensor.device.type == "meta"]


# ----------------------------------------------------------------------------------------------------------------
# the tester
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class ZooModelTester:
    """Builds tiny configs, models and inputs for one registered architecture and checks them."""

    arch_name: str
    batch_size: int = 2

    # --- building blocks -------------------------------------------------------------------------------------------

    @cached_property
    def arch(self) -> registry.Architecture:
        return registry.get_architecture(self.arch_name)

    @property
    def tasks(self) -> list[str]:
        return list(self.arch.model_classes)

    def config(self, **overrides):
        """The architecture's tiny config, with `overrides`."""
        return self.arch.config_class(**{**self.arch.tiny_config, **overrides})

    def model_class(self, task: str) -> type:
        return self.arch.model_classes[task]

    def model(self, task: str, config=None, seed: int = 0, **overrides) -> nn.Module:
        """A tiny model for `task` with seeded random weights, in eval mode."""
        config = self.config(**overrides) if config is None else config
        torch.manual_seed(seed)
        return self.model_class(task)(config).eval()

    @staticmethod
    def image_size(config) -> tuple[int, int]:
        size = config.image_size
        return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))

    def pixel_values(self, batch_size: int | None = None, size: tuple[int, int] | None = None, config=None,
                     seed: int = 1) -> torch.Tensor:
        """Seeded, roughly normalised random images at the config's input size (or `size`)."""
        config = self.config() if config is None else config
        height, width = self.image_size(config) if size is None else size
        generator = torch.Generator().manual_seed(seed)
        batch = self.batch_size if batch_size is None else batch_size
        return torch.randn(batch, config.num_channels, height, width, generator=generator)

    def stage_names(self, config=None) -> list[str]:
        """`["stem", "stage1", ...]`: the backbone stages (hierarchical models) or layers (plain ViTs)."""
        config = self.config() if config is None else config
        names = getattr(config, "stage_names", None)
        assert names, f"{type(config).__name__} must define stage_names (BackboneConfigMixin)"
        return list(names)

    def num_stages(self, config=None) -> int:
        """Stages with attention (every stage name but the stem)."""
        return len(self.stage_names(config)) - 1

    def heads_per_stage(self, config=None) -> list[int]:
        config = self.config() if config is None else config
        heads = getattr(config, "num_heads", None)
        if heads is None:
            heads = config.num_attention_heads
        return list(heads) if isinstance(heads, (list, tuple)) else [heads] * self.num_stages(config)

    def processor(self, backend: str = "torchvision", config=None):
        """The architecture's image processor resized straight to the tiny input size (no crop), so pipelines and
        processor round trips stay tiny."""
        height, width = self.image_size(self.config() if config is None else config)
        return registry.create_image_processor(self.arch_name, backend=backend,
                                               size={"height": height, "width": width}, do_center_crop=False)

    def all_stages_backbone(self, seed: int = 0, **overrides) -> nn.Module:
        names = self.stage_names()
        return self.model(BACKBONE, seed=seed, out_features=names, **overrides)

    # --- checks ------------------------------------------------------------------------------------------------

    def check_config_is_tiny(self) -> None:
        config = self.config()
        depths = getattr(config, "depths", None)
        if depths is not None:
            assert max(depths) <= MAX_BLOCKS_PER_STAGE, f"tiny config has {depths} blocks per stage"
        else:
            assert config.num_hidden_layers <= MAX_BLOCKS_PER_STAGE, "tiny config has too many layers"
        assert max(self.image_size(config)) <= MAX_IMAGE_SIDE, f"tiny image_size is {config.image_size}"
        for task in self.tasks:
            with torch.device("meta"):
                model = self.model_class(task)(config)
            params = sum(p.numel() for p in model.parameters())
            assert 0 < params < MAX_PARAMETERS, f"tiny {task} model has {params:,} parameters"

    def check_forward_shapes(self, task: str) -> None:
        config = self.config()
        model = self.model(task, config=config)
        batch = self.batch_size
        pixel_values = self.pixel_values(config=config)
        with torch.no_grad():
            out = model(pixel_values)
        for name, tensor in flatten_output(out):
            assert torch.isfinite(tensor).all(), f"{task}: {name} has NaN/inf"
        if task == FEATURE_EXTRACTION:
            assert out.last_hidden_state.ndim == 3, f"last_hidden_state shape {tuple(out.last_hidden_state.shape)}"
            assert out.last_hidden_state.shape[0] == batch and out.last_hidden_state.shape[2] == config.hidden_size
            assert out.last_hidden_state.shape[1] > 0
            assert out.pooler_output is not None, "the feature-extraction model must return pooler_output"
            assert tuple(out.pooler_output.shape) == (batch, config.hidden_size)
        elif task == IMAGE_CLASSIFICATION:
            assert tuple(out.logits.shape) == (batch, config.num_labels)
            assert out.loss is None, "no labels given, but a loss was returned"
        elif task == BACKBONE:
            self._check_feature_maps(model, out.feature_maps, batch)
            assert model.out_features == [self.stage_names(config)[-1]], (
                f"the default backbone must return the last stage, got {model.out_features}"
            )
        else:
            raise AssertionError(f"no shape check for task {task!r}; add one to the common tester")

    @staticmethod
    def _check_feature_maps(model, feature_maps, batch: int, size: tuple[int, int] | None = None) -> None:
        assert isinstance(feature_maps, tuple), f"feature_maps must be a tuple, got {type(feature_maps).__name__}"
        assert len(feature_maps) == len(model.out_features), (
            f"{len(feature_maps)} feature maps for out_features {model.out_features}"
        )
        assert len(model.channels) == len(model.out_features)
        previous = None
        for fmap, channels, name in zip(feature_maps, model.channels, model.out_features):
            assert fmap.ndim == 4, f"{name}: feature map must be NCHW, got {tuple(fmap.shape)}"
            assert fmap.shape[0] == batch and fmap.shape[1] == channels, (
                f"{name}: shape {tuple(fmap.shape)} but batch={batch}, channels={channels}"
            )
            assert torch.isfinite(fmap).all(), f"{name}: NaN/inf in feature map"
            if size is not None:
                assert fmap.shape[2] <= size[0] and fmap.shape[3] <= size[1]
            if previous is not None:  # stages never get larger
                assert fmap.shape[2] <= previous[0] and fmap.shape[3] <= previous[1]
            previous = fmap.shape[2:]

    def check_backbone_stage_selection(self) -> None:
        """out_features / out_indices choose exactly those stages, in stage order, with matching channels."""
        names = self.stage_names()
        full = self.all_stages_backbone()
        assert full.out_features == names and full.out_indices == list(range(len(names)))
        pixel_values = self.pixel_values()
        with torch.no_grad():
            all_maps = full(pixel_values).feature_maps
        self._check_feature_maps(full, all_maps, self.batch_size, self.image_size(self.config()))
        assert list(full.channels) == [full.num_features[i] for i in full.out_indices]

        picks = [[names[1], names[-1]], [names[0]], [names[-1]]]
        for pick in picks:
            indices = [names.index(n) for n in pick]
            by_name = self.model(BACKBONE, out_features=pick)
            by_index = self.model(BACKBONE, out_indices=indices)
            assert by_name.out_features == pick and by_name.out_indices == indices
            assert by_index.out_features == pick and by_index.out_indices == indices
            assert by_name.channels == [full.channels[i] for i in indices]
            for selected in (by_name, by_index):
                # the subset's weights are a subset of the full backbone's: load them, get the same maps
                result = selected.load_state_dict(full.state_dict(), strict=False)
                assert not result.missing_keys, f"{pick}: not in the all-stage backbone: {result.missing_keys}"
                with torch.no_grad():
                    maps = selected(pixel_values).feature_maps
                self._check_feature_maps(selected, maps, self.batch_size)
                assert_outputs_close(maps, tuple(all_maps[i] for i in indices), what=f"stages {pick}")
        # negative indices count from the end, as in timm / transformers
        last = self.model(BACKBONE, out_indices=[-1])
        assert last.out_features == [names[-1]]
        try:
            self.config(out_features=["not_a_stage"])
        except ValueError:
            pass
        else:
            raise AssertionError("an unknown stage name in out_features must raise ValueError")

    def check_no_nan(self, task: str) -> None:
        model = self.model(task)
        with torch.no_grad():
            out = model(self.pixel_values(), output_hidden_states=True)
        flat = flatten_output(out)
        assert flat, "empty output"
        for name, tensor in flat:
            assert torch.isfinite(tensor).all(), f"{task}: {name} has NaN/inf"

    def check_tuple_dict_equivalence(self, task: str) -> None:
        model = self.model(task)
        pixel_values = self.pixel_values()
        variants = [{}, {"output_hidden_states": True}, {"output_hidden_states": True, "output_attentions": True}]
        for kwargs in variants:
            with torch.no_grad():
                as_dict = model(pixel_values, return_dict=True, **kwargs)
                as_tuple = model(pixel_values, return_dict=False, **kwargs)
            assert_tuple_matches_dict(as_tuple, as_dict)
        if task == IMAGE_CLASSIFICATION:
            labels = torch.arange(self.batch_size) % model.config.num_labels
            with torch.no_grad():
                as_dict = model(pixel_values, labels=labels)
                as_tuple = model(pixel_values, labels=labels, return_dict=False)
            assert as_dict.loss is not None
            assert_tuple_matches_dict(as_tuple, as_dict)
            torch.testing.assert_close(as_tuple[0], as_dict.loss, atol=0, rtol=0)
        # config.return_dict=False has the same effect as the argument
        config = self.config()
        config.return_dict = False
        model_tuple = self.model(task, config=config)
        with torch.no_grad():
            out = model_tuple(pixel_values)
        assert isinstance(out, tuple) and not isinstance(out, ModelOutput), "config.return_dict=False ignored"

    def check_determinism(self, task: str) -> None:
        model = self.model(task)
        pixel_values = self.pixel_values()
        with torch.no_grad():
            first = model(pixel_values, output_hidden_states=True)
            second = model(pixel_values, output_hidden_states=True)
        assert_outputs_close(first, second, what="two eval forwards")
        # seeded construction is reproducible
        again = self.model(task)
        state, state_again = model.state_dict(), again.state_dict()
        assert state.keys() == state_again.keys()
        for key in state:
            assert torch.equal(state[key], state_again[key]), f"seeded init differs at {key}"
        other = self.model(task, seed=1)
        assert any(not torch.equal(state[k], v) for k, v in other.state_dict().items()), "init ignores the seed"

    def check_batching_equivalence(self, task: str, atol: float = 1e-5) -> None:
        model = self.model(task)
        pixel_values = self.pixel_values(batch_size=3)
        with torch.no_grad():
            batched = model(pixel_values, output_hidden_states=True)
            singles = [model(pixel_values[i:i + 1], output_hidden_states=True) for i in range(3)]
        batched_flat = flatten_output(batched)
        singles_flat = [flatten_output(s) for s in singles]
        assert batched_flat
        for index, (name, tensor) in enumerate(batched_flat):
            assert tensor.shape[0] == 3, f"{name}: batch dimension {tensor.shape[0]} != 3"
            for i in range(3):
                single_name, single = singles_flat[i][index]
                assert single_name == name
                torch.testing.assert_close(tensor[i:i + 1], single, atol=atol, rtol=0,
                                           msg=lambda m, n=name, j=i: f"{task}: {n}[{j}] batched vs single: {m}")

    def check_hidden_states(self, task: str) -> None:
        """`output_hidden_states`: 1 + num_stages entries (the embedding output, then one per stage), with each
        stage's channels and resolution; by argument or by config; absent when not requested."""
        config = self.config()
        names = self.stage_names(config)
        model = self.model(task, config=config)
        pixel_values = self.pixel_values(config=config)
        with torch.no_grad():
            plain = model(pixel_values)
            out = model(pixel_values, output_hidden_states=True)
        assert plain.hidden_states is None, "hidden_states returned without being requested"
        hidden = out.hidden_states
        assert hidden is not None and len(hidden) == len(names), (
            f"{task}: {0 if hidden is None else len(hidden)} hidden states, expected {len(names)} ({names})"
        )
        # the same through the config
        with torch.no_grad():
            by_config = self.model(task, config=self.config(output_hidden_states=True))(pixel_values)
        assert by_config.hidden_states is not None and len(by_config.hidden_states) == len(names)
        assert_outputs_close(by_config.hidden_states, hidden, what="hidden_states by config vs argument")
        for state in hidden:
            assert state.shape[0] == self.batch_size and torch.isfinite(state).all()
        patch = getattr(config, "patch_size", None)
        if isinstance(patch, int):  # the embedding output is the patch grid of the input
            height, width = self.image_size(config)
            grid = math.ceil(height / patch) * math.ceil(width / patch)
            tokens = hidden[0].shape[1] if hidden[0].ndim == 3 else hidden[0].shape[2] * hidden[0].shape[3]
            assert tokens in (grid, grid + 1), f"hidden_states[0] has {tokens} tokens for a {grid}-patch grid"
        if task == FEATURE_EXTRACTION:
            assert hidden[-1].shape == out.last_hidden_state.shape
        if BACKBONE not in self.tasks:  # a plain (non-hierarchical) encoder: every layer keeps the token shape
            for i, state in enumerate(hidden):
                assert state.ndim == 3 and state.shape == hidden[-1].shape, f"hidden_states[{i}]: {state.shape}"
            return
        # expected channels and spatial size per stage, from an all-stage backbone on the same input
        reference = self.all_stages_backbone()
        with torch.no_grad():
            maps = reference(pixel_values).feature_maps
        channels = list(reference.channels)
        for i, state in enumerate(hidden):
            if state.ndim == 3:  # (B, tokens, C)
                expected = (self.batch_size, maps[i].shape[2] * maps[i].shape[3], channels[i])
            else:  # (B, C, H, W) (a backbone's reshaped hidden states)
                expected = (self.batch_size, channels[i], maps[i].shape[2], maps[i].shape[3])
            assert tuple(state.shape) == expected, f"{task}: hidden_states[{i}] {tuple(state.shape)} != {expected}"

    def check_attentions(self, task: str) -> None:
        """`output_attentions`: one attention map per stage, `(B * windows, heads, N, N)` rows summing to one;
        they are returned even by the SDPA model (it falls back to eager for them)."""
        config = self.config()
        model = self.model(task, config=config)
        pixel_values = self.pixel_values(config=config)
        with torch.no_grad():
            plain = model(pixel_values)
            out = model(pixel_values, output_attentions=True)
        assert getattr(plain, "attentions", None) is None, "attentions returned without being requested"
        attentions = out.attentions
        stages = self.num_stages(config)
        heads = self.heads_per_stage(config)
        assert attentions is not None and len(attentions) == stages, (
            f"{task}: {0 if attentions is None else len(attentions)} attention maps, expected {stages}"
        )
        assert any(a is not None for a in attentions), f"{task}: no block returned an attention map"
        for i, attention in enumerate(attentions):
            if attention is None:  # a stage without attention (e.g. a Hyena or convolutional token mixer)
                continue
            assert attention.ndim == 4, f"attentions[{i}] must be (batch*windows, heads, N, N): {attention.shape}"
            assert attention.shape[0] % self.batch_size == 0
            assert attention.shape[1] == heads[i], f"attentions[{i}] has {attention.shape[1]} heads, not {heads[i]}"
            # queries x keys: square for self-attention; fewer keys where keys/values are pooled or compressed
            assert attention.shape[3] <= attention.shape[2] or getattr(config, "window_size", None) is None
            torch.testing.assert_close(attention.sum(-1), torch.ones_like(attention.sum(-1)), atol=1e-5, rtol=0)
            assert (attention >= 0).all()
        window = getattr(config, "window_size", None)
        if isinstance(window, int) and attentions[0] is not None:  # windowed: N is one window (stage 1 unclamped)
            assert attentions[0].shape[-1] == window**2, f"stage 1 attends over {attentions[0].shape[-1]} tokens"
            assert all(a.shape[-1] <= window**2 for a in attentions)
        # outputs themselves do not change when attentions are requested
        assert_outputs_close(first_tensor(out), first_tensor(plain), atol=1e-5, rtol=1e-5,
                             what="output with vs without output_attentions")
        config_on = self.config(output_attentions=True)
        with torch.no_grad():
            by_config = self.model(task, config=config_on)(pixel_values)
        assert by_config.attentions is not None and len(by_config.attentions) == stages

    def check_save_load(self, task: str, directory: Path) -> None:
        """save_pretrained writes config.json + model.safetensors (no pickle); from_pretrained restores the model
        exactly, with nothing missing or unexpected."""
        from safetensors import safe_open

        model = self.model(task)
        pixel_values = self.pixel_values()
        with torch.no_grad():
            before = model(pixel_values, output_hidden_states=True)
        model.save_pretrained(directory)
        files = sorted(p.name for p in directory.iterdir())
        assert "model.safetensors" in files and "config.json" in files, f"saved files: {files}"
        assert not any(name.endswith((".bin", ".pt", ".pth")) for name in files), f"pickle files written: {files}"
        with safe_open(directory / "model.safetensors", framework="pt") as handle:
            saved_keys = set(handle.keys())
        assert saved_keys == set(model.state_dict()), (
            f"safetensors keys differ from state_dict: {sorted(saved_keys ^ set(model.state_dict()))[:5]}"
        )
        loaded, info = self.model_class(task).from_pretrained(directory, output_loading_info=True)
        assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
        assert type(loaded) is type(model)
        saved_config = {k: v for k, v in model.config.to_dict().items() if k != "_name_or_path"}
        loaded_config = {k: v for k, v in loaded.config.to_dict().items() if k != "_name_or_path"}
        assert loaded_config == saved_config, "config changed in the round trip"
        loaded.eval()
        assert not tensors_on_meta(loaded)
        for (name, a), (_, b) in zip(sorted(model.state_dict().items()), sorted(loaded.state_dict().items())):
            assert torch.equal(a, b), f"{name} changed in the round trip"
        for (name, a), (_, b) in zip(sorted(model.named_buffers()), sorted(loaded.named_buffers())):
            assert torch.equal(a, b), f"buffer {name} changed in the round trip"
        with torch.no_grad():
            after = loaded(pixel_values, output_hidden_states=True)
        assert_outputs_close(after, before, what="outputs after save/load")

    def check_auto_round_trip(self, directory: Path) -> None:
        """Saved folders load through AutoConfig, AutoModel, AutoModelForImageClassification, AutoBackbone (with
        out_features) and AutoImageProcessor (both backends)."""
        from transformers import (
            AutoBackbone,
            AutoConfig,
            AutoImageProcessor,
            AutoModel,
            AutoModelForImageClassification,
        )

        auto_for_task = {FEATURE_EXTRACTION: AutoModel, IMAGE_CLASSIFICATION: AutoModelForImageClassification}
        pixel_values = self.pixel_values()
        for task, auto_class in auto_for_task.items():
            if task not in self.tasks:
                continue
            folder = directory / task
            model = self.model(task)
            model.save_pretrained(folder)
            config = AutoConfig.from_pretrained(folder)
            assert type(config) is self.arch.config_class
            assert config.model_type == self.arch.config_class.model_type and config.model_type.startswith("zoo_")
            loaded = auto_class.from_pretrained(folder).eval()
            assert type(loaded) is self.model_class(task), f"{auto_class.__name__} gave {type(loaded).__name__}"
            with torch.no_grad():
                assert_outputs_close(loaded(pixel_values), model(pixel_values), what=f"{auto_class.__name__}")
            # from_config builds the same class
            assert type(auto_class.from_config(config)) is self.model_class(task)

        if BACKBONE in self.tasks:
            names = self.stage_names()
            pick = [names[1], names[-1]]
            folder = directory / BACKBONE
            backbone = self.model(BACKBONE, out_features=pick)
            backbone.save_pretrained(folder)
            config = AutoConfig.from_pretrained(folder)
            assert config.out_features == pick and config.out_indices == [1, len(names) - 1]
            # AutoBackbone resolves our class (from a config that selects other stages, too)
            other = AutoConfig.from_pretrained(folder, out_features=[names[0], names[-1]])
            assert other.out_features == [names[0], names[-1]]
            from_config = AutoBackbone.from_config(other)
            assert type(from_config) is self.model_class(BACKBONE) and from_config.out_features == other.out_features
            # NOTE: AutoBackbone.from_pretrained(<local folder>) is broken upstream in transformers 5.23
            # (`_BaseAutoBackboneClass.from_pretrained` asks the Hub `repo_exists(path)` before anything else, which
            # raises HFValidationError for an absolute path, OfflineModeIsEnabled offline). The weights therefore
            # load through the class the Auto mapping resolves to.
            resolved = AutoBackbone._model_mapping[type(config)]
            assert resolved is self.model_class(BACKBONE)
            loaded, info = resolved.from_pretrained(folder, output_loading_info=True)
            assert not info["missing_keys"] and not info["unexpected_keys"], info
            loaded.eval()
            assert loaded.out_features == pick
            with torch.no_grad():
                assert_outputs_close(loaded(pixel_values), backbone(pixel_values), what="backbone round trip")

        folder = directory / "processor"
        processor = self.processor()
        processor.save_pretrained(folder)
        torchvision_class = self.arch.image_processor_classes["torchvision"]
        pil_class = self.arch.image_processor_classes["pil"]
        assert type(AutoImageProcessor.from_pretrained(folder)) is torchvision_class
        assert type(AutoImageProcessor.from_pretrained(folder, backend="torchvision")) is torchvision_class
        assert type(AutoImageProcessor.from_pretrained(folder, backend="pil")) is pil_class

    def check_base_model_from_classification_checkpoint(self, directory: Path) -> None:
        """AutoModel on a classification checkpoint gives the encoder with the same features (the head is dropped),
        and a classification model loads an encoder checkpoint (only the head is new)."""
        from transformers import AutoModel, AutoModelForImageClassification

        classifier = self.model(IMAGE_CLASSIFICATION)
        classifier.save_pretrained(directory / "classifier")
        base, info = AutoModel.from_pretrained(directory / "classifier", output_loading_info=True)
        base.eval()
        assert type(base) is self.model_class(FEATURE_EXTRACTION)
        assert not info["missing_keys"], f"encoder weights missing: {info['missing_keys']}"
        assert info["unexpected_keys"], "the classifier head should be reported as unexpected"
        pixel_values = self.pixel_values()
        encoder = getattr(classifier, classifier.base_model_prefix)
        with torch.no_grad():
            expected = encoder(pixel_values, output_hidden_states=True)
            got = base(pixel_values, output_hidden_states=True)
        assert_outputs_close(got, expected, what="AutoModel from a classification checkpoint")

        base.save_pretrained(directory / "encoder")
        again, info = AutoModelForImageClassification.from_pretrained(directory / "encoder", output_loading_info=True)
        assert type(again) is self.model_class(IMAGE_CLASSIFICATION)
        assert info["missing_keys"] and all(not k.startswith(classifier.base_model_prefix + ".")
                                            for k in info["missing_keys"]), info["missing_keys"]
        assert not info["unexpected_keys"]
        with torch.no_grad():
            features = getattr(again.eval(), again.base_model_prefix)(pixel_values)
            expected = base(pixel_values)
        assert_outputs_close(features, expected, what="encoder inside a classifier loaded from an encoder")

    def check_meta_init_completeness(self, task: str) -> None:
        """transformers v5 builds models on the meta device and lets `_init_weights` create every missing tensor:
        `from_pretrained(None, config=..., state_dict={})` must leave nothing on meta and equal `__init__` exactly
        (under order-independent seeding), buffers included."""
        config = self.config()
        cls = self.model_class(task)
        with seeded_weight_init():
            from_init = cls(copy.deepcopy(config))
            from_meta = cls.from_pretrained(None, config=copy.deepcopy(config), state_dict={})
        on_meta = tensors_on_meta(from_meta)
        assert not on_meta, f"still on the meta device: {on_meta}"
        init_state, meta_state = from_init.state_dict(), from_meta.state_dict()
        assert sorted(init_state) == sorted(meta_state)
        different = sorted(k for k in init_state if not torch.equal(init_state[k], meta_state[k]))
        assert not different, f"not (re)created by _init_weights: {different}"
        init_buffers, meta_buffers = dict(from_init.named_buffers()), dict(from_meta.named_buffers())
        assert sorted(init_buffers) == sorted(meta_buffers)
        for name, value in init_buffers.items():
            assert torch.equal(value, meta_buffers[name]), f"buffer {name} differs after meta-device loading"

        # init_weights alone can rebuild every buffer of a model materialised from the meta device
        with hf_init.no_init_weights():
            fresh = cls(copy.deepcopy(config))
        with torch.device("meta"):
            empty = cls(copy.deepcopy(config))
        empty.to_empty(device="cpu")
        empty.init_weights()
        fresh_buffers, rebuilt = dict(fresh.named_buffers()), dict(empty.named_buffers())
        assert sorted(fresh_buffers) == sorted(rebuilt)
        for name, value in fresh_buffers.items():
            assert torch.equal(value, rebuilt[name]), f"init_weights does not rebuild buffer {name}"
        with torch.no_grad():
            out = empty.eval()(self.pixel_values(config=config))
        for name, tensor in flatten_output(out):
            assert torch.isfinite(tensor).all(), f"{name} not finite after meta-device init"

    def _loss(self, task: str, model, pixel_values, **kwargs):
        if task == IMAGE_CLASSIFICATION:
            labels = torch.arange(pixel_values.shape[0]) % model.config.num_labels
            out = model(pixel_values, labels=labels, **kwargs)
            assert out.loss is not None and out.loss.ndim == 0
            return out.loss, out
        out = model(pixel_values, output_hidden_states=True, **kwargs)
        # every output a user could train on: features, pooled output, all feature maps
        return sum(t.float().pow(2).mean() for _, t in flatten_output(out) if t.requires_grad), out

    def check_every_parameter_gets_a_gradient(self, task: str) -> None:
        overrides = {"out_features": self.stage_names()} if task == BACKBONE else {}
        model = self.model(task, **overrides).train()
        loss, _ = self._loss(task, model, self.pixel_values())
        loss.backward()
        no_grad = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
        assert not no_grad, (
            f"{task}: parameters without a gradient, i.e. never used in forward: {no_grad}. Dead weights make "
            f"DistributedDataParallel fail unless find_unused_parameters=True, and waste optimizer state"
        )
        not_finite = [n for n, p in model.named_parameters() if not torch.isfinite(p.grad).all()]
        assert not not_finite, f"non-finite gradients: {not_finite}"
        zero = [n for n, p in model.named_parameters() if not p.grad.abs().sum() > 0]
        assert not zero, f"{task}: parameters with an all-zero gradient: {zero}"

    def check_gradient_checkpointing(self, task: str, use_reentrant: bool) -> None:
        """With checkpointing on, the blocks really are recomputed in backward, and outputs and gradients equal
        those without it (train mode, no dropout / drop path)."""
        no_dropout = {"drop_path_rate": 0.0, "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
        no_dropout = {k: v for k, v in no_dropout.items() if hasattr(self.config(), k)}
        model_class = self.model_class(task)
        assert model_class.supports_gradient_checkpointing, f"{model_class.__name__} must support checkpointing"
        pixel_values = self.pixel_values()

        def run(checkpointing: bool):
            model = self.model(task, **no_dropout).train()
            if checkpointing:
                enable = getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable
                kwarg = ("activation_checkpointing_kwargs" if enable.__name__.startswith("activation")
                         else "gradient_checkpointing_kwargs")
                enable(**{kwarg: {"use_reentrant": use_reentrant}})
            layers = [m for m in model.modules() if isinstance(m, GradientCheckpointingLayer)]
            assert layers, f"{model_class.__name__} has no GradientCheckpointingLayer blocks"
            # transformers checkpoints a layer's `forward` (its own hooks stay outside), so count the calls of the
            # leaf modules inside the layers: a recomputation in backward calls them again
            leaves = [m for layer in layers for m in layer.modules() if not list(m.children())]
            calls = [0]
            handles = [leaf.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1)) for leaf in leaves]
            inputs = pixel_values.clone().requires_grad_(use_reentrant)  # reentrant checkpoints need a grad input
            loss, out = self._loss(task, model, inputs)
            forward_calls = calls[0]
            loss.backward()
            for handle in handles:
                handle.remove()
            grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
            return out, grads, forward_calls, calls[0], len(layers)

        out_plain, grads_plain, fwd_plain, total_plain, layers = run(False)
        out_ckpt, grads_ckpt, fwd_ckpt, total_ckpt, _ = run(True)
        assert fwd_plain == fwd_ckpt > 0 and total_plain == fwd_plain, "no recomputation without checkpointing"
        recomputed = total_ckpt - fwd_ckpt
        # reentrant checkpoints rerun the whole block; non-reentrant ones stop once every saved tensor is rebuilt
        expected = "== " if use_reentrant else "in (0, "
        ok = recomputed == fwd_ckpt if use_reentrant else 0 < recomputed <= fwd_ckpt
        assert ok, (
            f"with checkpointing, the {layers} blocks should run again in backward: {fwd_ckpt} sub-module calls in "
            f"forward, {recomputed} in backward (expected {expected}{fwd_ckpt}{']' if not use_reentrant else ''})"
        )
        assert_outputs_close(out_ckpt, out_plain, atol=1e-6, rtol=1e-5, what="checkpointed forward")
        assert grads_plain.keys() == grads_ckpt.keys() and grads_plain
        for name, grad in grads_plain.items():
            torch.testing.assert_close(grads_ckpt[name], grad, atol=1e-6, rtol=1e-4,
                                       msg=lambda m, n=name: f"gradient of {n} differs with checkpointing: {m}")

    def check_eager_matches_sdpa(self, task: str, directory: Path, atol: float = 1e-5) -> None:
        """Eager attention and SDPA (the default) give the same outputs; SDPA is really used by the sdpa model and
        not by the eager one; the implementation can be chosen at load time and switched later."""
        model = self.model(task)
        assert type(model)._supports_sdpa, "zoo models use the attention interface and support SDPA"
        assert model.config._attn_implementation == "sdpa", "SDPA must be the default"
        model.save_pretrained(directory)
        cls = self.model_class(task)
        eager = cls.from_pretrained(directory, attn_implementation="eager").eval()
        sdpa = cls.from_pretrained(directory, attn_implementation="sdpa").eval()
        assert eager.config._attn_implementation == "eager" and sdpa.config._attn_implementation == "sdpa"
        pixel_values = self.pixel_values(batch_size=3)
        sdpa_function = torch.nn.functional.scaled_dot_product_attention

        def forward_counting(m, **kwargs):
            with mock.patch("torch.nn.functional.scaled_dot_product_attention", wraps=sdpa_function) as spy:
                with torch.no_grad():
                    out = m(pixel_values, **kwargs)
            return out, spy.call_count

        out_eager, eager_calls = forward_counting(eager, output_hidden_states=True)
        out_sdpa, sdpa_calls = forward_counting(sdpa, output_hidden_states=True)
        assert eager_calls == 0, f"the eager model called SDPA {eager_calls} times"
        assert sdpa_calls > 0, "the sdpa model never called scaled_dot_product_attention"
        assert_outputs_close(out_sdpa, out_eager, atol=atol, rtol=1e-4, what="sdpa vs eager")
        # output_attentions with SDPA still returns the (eager) attention maps, with the same outputs
        out_attn, _ = forward_counting(sdpa, output_attentions=True)
        assert out_attn.attentions is not None and len(out_attn.attentions) == self.num_stages()
        assert_outputs_close(first_tensor(out_attn), first_tensor(out_eager), atol=atol, rtol=1e-4,
                             what="sdpa with output_attentions")
        # switching at run time
        sdpa.set_attn_implementation("eager")
        assert sdpa.config._attn_implementation == "eager"
        out_switched, calls = forward_counting(sdpa, output_hidden_states=True)
        assert calls == 0
        assert_outputs_close(out_switched, out_eager, atol=1e-6, rtol=1e-5, what="after set_attn_implementation")

    def check_other_input_sizes(self, task: str) -> None:
        """A non-square size that is a multiple of neither the patch nor the window is padded and works; an image
        smaller than one patch is rejected with a clear ValueError. Models whose forward takes
        `interpolate_pos_encoding` (learned absolute positions) are asked to resize their position table."""
        config = self.config()
        model = self.model(task, config=config)
        resize = ({"interpolate_pos_encoding": True}
                  if "interpolate_pos_encoding" in inspect.signature(model.forward).parameters else {})
        height, width = self.image_size(config)
        patch = getattr(config, "patch_size", 1)
        patch = patch if isinstance(patch, int) else max(patch)
        sizes = [(height - 3, width + 13), (height + 5, max(patch + 1, width // 2 + 1))]
        for size in sizes:
            assert size[0] % patch or size[1] % patch, f"{size} should not be a multiple of the patch size"
            pixel_values = self.pixel_values(batch_size=2, size=size, config=config)
            with torch.no_grad():
                out = model(pixel_values, **resize)
                single = model(pixel_values[:1], **resize)
            for name, tensor in flatten_output(out):
                assert torch.isfinite(tensor).all(), f"{size}: {name} not finite"
            if task == IMAGE_CLASSIFICATION:
                assert tuple(out.logits.shape) == (2, config.num_labels)
            elif task == FEATURE_EXTRACTION:
                assert out.last_hidden_state.shape[0] == 2 and out.last_hidden_state.shape[2] == config.hidden_size
                assert tuple(out.pooler_output.shape) == (2, config.hidden_size)
            elif task == BACKBONE:
                self._check_feature_maps(model, out.feature_maps, 2, size)
            # padding is per image: the batch does not leak into single results
            torch.testing.assert_close(first_tensor(single)[0], first_tensor(out)[0], atol=1e-5, rtol=0)
        if patch > 1:
            tiny = self.pixel_values(batch_size=1, size=(patch - 1, patch - 1), config=config)
            try:
                model(tiny, **resize)
            except ValueError as error:
                message = str(error).lower()
                assert "patch" in message and str(patch - 1) in message, f"unclear error: {error}"
            else:
                raise AssertionError(f"a {patch - 1}x{patch - 1} image (smaller than one patch) must raise ValueError")

    def check_bad_inputs(self, task: str) -> None:
        config = self.config()
        model = self.model(task, config=config)
        good = self.pixel_values(config=config)
        cases = [
            (good[:, :1], "channel"),
            (torch.cat([good, good[:, :1]], dim=1), "channel"),
            (good.masked_fill(torch.rand_like(good) < 0.01, float("nan")), "nan"),
            (good[:0], "empty"),
            (good[0], "shape"),
        ]
        for bad, keyword in cases:
            try:
                with torch.no_grad():
                    model(bad)
            except ValueError as error:
                assert keyword in str(error).lower(), f"{task}: error does not mention {keyword!r}: {error}"
            else:
                raise AssertionError(f"{task}: input of shape {tuple(bad.shape)} ({keyword}) was accepted")
        if task == IMAGE_CLASSIFICATION:
            num_labels = config.num_labels
            for labels in (torch.tensor([0, num_labels]), torch.tensor([-1, 0])):
                try:
                    model(good, labels=labels)
                except ValueError as error:
                    assert "label" in str(error).lower(), f"unclear error for labels {labels.tolist()}: {error}"
                else:
                    raise AssertionError(f"labels {labels.tolist()} outside [0, {num_labels}) were accepted")
            try:
                model(good, labels=torch.tensor([0]))
            except ValueError as error:
                assert "batch" in str(error).lower()
            else:
                raise AssertionError("labels with the wrong batch size were accepted")

    def check_problem_types(self) -> None:
        import torch.nn.functional as F

        pixel_values = self.pixel_values(batch_size=4)
        # single-label: integer labels -> cross-entropy
        model = self.model(IMAGE_CLASSIFICATION)
        num_labels = model.config.num_labels
        labels = torch.tensor([0, 1, num_labels - 1, 2 % num_labels])
        out = model(pixel_values, labels=labels)
        torch.testing.assert_close(out.loss, F.cross_entropy(out.logits, labels))
        out.loss.backward()
        # multi-label: float multi-hot labels with problem_type -> BCE with logits
        model = self.model(IMAGE_CLASSIFICATION, problem_type="multi_label_classification")
        targets = (torch.rand(4, num_labels, generator=torch.Generator().manual_seed(0)) > 0.5).float()
        out = model(pixel_values, labels=targets)
        torch.testing.assert_close(out.loss, F.binary_cross_entropy_with_logits(out.logits, targets))
        out.loss.backward()
        # regression: one output, float targets -> MSE
        model = self.model(IMAGE_CLASSIFICATION, num_labels=1, problem_type="regression")
        values = torch.randn(4, generator=torch.Generator().manual_seed(0))
        out = model(pixel_values, labels=values)
        assert tuple(out.logits.shape) == (4, 1)
        torch.testing.assert_close(out.loss, F.mse_loss(out.logits.squeeze(-1), values))

    def save_for_pipeline(self, directory: Path, labels: list[str]) -> tuple[nn.Module, object]:
        id2label = dict(enumerate(labels))
        model = self.model(IMAGE_CLASSIFICATION, num_labels=len(labels), id2label=id2label,
                           label2id={v: k for k, v in id2label.items()})
        processor = self.processor()
        model.save_pretrained(directory)
        processor.save_pretrained(directory)
        return model, processor

    def check_pipelines(self, directory: Path, photo) -> None:
        """`pipeline("image-classification" / "image-feature-extraction", model=<folder>)` on a real photo, also in
        grayscale and RGBA, gives what the model gives on the processor's pixels."""
        from transformers import pipeline

        labels = ["cat", "dog", "coffee", "astronaut", "rocket"]
        model, processor = self.save_for_pipeline(directory, labels)

        classify = pipeline("image-classification", model=str(directory), device="cpu")
        assert type(classify.model) is self.model_class(IMAGE_CLASSIFICATION)
        assert type(classify.image_processor) is self.arch.image_processor_classes["torchvision"]
        with torch.no_grad():
            probs = model(**processor(photo, return_tensors="pt")).logits.softmax(-1)[0]
        result = classify(photo, top_k=len(labels))
        assert sorted(r["label"] for r in result) == sorted(labels)
        assert [r["score"] for r in result] == sorted((r["score"] for r in result), reverse=True)
        for r in result:
            assert math.isclose(r["score"], probs[labels.index(r["label"])].item(), abs_tol=1e-5), result
        assert math.isclose(sum(r["score"] for r in result), 1.0, abs_tol=1e-4)
        assert len(classify(photo, top_k=2)) == 2

        gray, rgba = photo.convert("L"), photo.convert("RGBA")
        assert classify(rgba, top_k=len(labels)) == result, "an opaque RGBA image must classify like its RGB"
        gray_result = classify(gray, top_k=len(labels))
        gray_rgb_result = classify(gray.convert("RGB"), top_k=len(labels))
        for a, b in zip(gray_result, gray_rgb_result):
            assert a["label"] == b["label"] and math.isclose(a["score"], b["score"], abs_tol=1e-6)
        batch = classify([photo, gray, rgba], top_k=1)
        assert len(batch) == 3 and batch[0][0]["label"] == result[0]["label"]

        extract = pipeline("image-feature-extraction", model=str(directory), device="cpu")
        assert type(extract.model) is self.model_class(FEATURE_EXTRACTION)
        encoder = getattr(model, model.base_model_prefix)
        with torch.no_grad():
            expected = encoder(**processor(photo, return_tensors="pt")).last_hidden_state
        features = extract(photo, return_tensors=True)
        assert isinstance(features, torch.Tensor) and features.shape == expected.shape
        torch.testing.assert_close(features, expected, atol=1e-5, rtol=1e-5)
        as_list = extract(photo)
        assert torch.tensor(as_list).shape == expected.shape
        for image in (gray, rgba):
            out = extract(image, return_tensors=True)
            assert out.shape == expected.shape and torch.isfinite(out).all()

    def check_image_processor_backends(self, directory: Path, photos: dict) -> None:
        """Both backends do the same preprocessing: on real photos they differ by at most a couple of 8-bit
        quantisation steps in a few pixels (PIL and torchvision round resized pixels differently); both convert
        grayscale/RGBA to RGB; both save and load through AutoImageProcessor, and `backend="pil"` selects PIL."""
        from transformers import AutoImageProcessor

        processors = {
            "default": (registry.create_image_processor(self.arch_name),
                        registry.create_image_processor(self.arch_name, backend="pil")),
            "tiny": (self.processor(), self.processor(backend="pil")),
        }
        torchvision_class = self.arch.image_processor_classes["torchvision"]
        pil_class = self.arch.image_processor_classes["pil"]
        for label, (fast, slow) in processors.items():
            assert type(fast) is torchvision_class and type(slow) is pil_class
            std = min(fast.image_std) if fast.do_normalize else 1.0
            one_step = 1.0 / 255.0 / std  # one 8-bit level after rescale + normalise
            for name, image in photos.items():
                a = fast(image, return_tensors="pt").pixel_values
                b = slow(image, return_tensors="pt").pixel_values
                assert a.shape == b.shape and a.shape[:2] == (1, 3), f"{label}/{name}: {a.shape} vs {b.shape}"
                difference = (a - b).abs()
                assert difference.mean() < 1e-3, f"{label}/{name}: mean difference {difference.mean():.2e}"
                assert (difference > 1e-2).float().mean() < 0.01, f"{label}/{name}: >1% of pixels differ by >1e-2"
                assert difference.max() <= 2 * one_step + 1e-4, f"{label}/{name}: max difference {difference.max()}"
            for image in (photos["chelsea"].convert("L"), photos["chelsea"].convert("RGBA")):
                for processor in (fast, slow):
                    out = processor(image, return_tensors="pt").pixel_values
                    assert out.shape[1] == 3, f"{image.mode} image not converted to RGB: {out.shape}"

        fast, slow = processors["tiny"]
        photo = photos["chelsea"]
        expected = fast(photo, return_tensors="pt").pixel_values
        height, width = self.image_size(self.config())
        assert tuple(expected.shape) == (1, 3, height, width)
        for backend, processor in (("torchvision", fast), ("pil", slow)):
            folder = directory / backend
            processor.save_pretrained(folder)
            assert (folder / "preprocessor_config.json").exists()
            reference = processor(photo, return_tensors="pt").pixel_values
            default_loaded = AutoImageProcessor.from_pretrained(folder)
            assert type(default_loaded) is torchvision_class, "AutoImageProcessor defaults to torchvision"
            pil_loaded = AutoImageProcessor.from_pretrained(folder, backend="pil")
            assert type(pil_loaded) is pil_class
            for loaded in (default_loaded, pil_loaded):
                assert loaded.size == processor.size and list(loaded.image_mean) == list(processor.image_mean)
                assert bool(loaded.do_center_crop) == bool(processor.do_center_crop)
            same_backend = pil_loaded if backend == "pil" else default_loaded
            torch.testing.assert_close(same_backend(photo, return_tensors="pt").pixel_values, reference,
                                       atol=0, rtol=0)

