"""What every zoo model shares: its PreTrainedModel base class and the input checks of its public `forward`."""

import torch
from torch import nn
from transformers import initialization as init
from transformers.backbone_utils import BackboneMixin, filter_output_hidden_states
from transformers.modeling_outputs import BackboneOutput, ImageClassifierOutput
from transformers.modeling_utils import PreTrainedModel
from transformers.utils.generic import can_return_tuple


class ZooPreTrainedModel(PreTrainedModel):
    """Base of every zoo `XPreTrainedModel`: image input, gradient checkpointing, switchable attention backends."""

    main_input_name = "pixel_values"
    input_modalities = ("image",)
    supports_gradient_checkpointing = True
    # attention goes through `layers.get_attention_function` (eager or SDPA); flash/flex kernels are not wired
    _supports_sdpa = True
    _supports_flash_attn = False
    _supports_flex_attn = False
    _supports_attention_backend = True

    @classmethod
    def _can_set_attn_implementation(cls) -> bool:
        # transformers decides this by searching the modeling file's text for `ALL_ATTENTION_FUNCTIONS.get_interface(`;
        # zoo models call it through `layers.get_attention_function` on every forward, so switching always works.
        return True


def init_common_weights(module: nn.Module, std: float, trunc_normal_types: tuple = (nn.Linear,)) -> bool:
    """The initialisation most zoo models share: truncated normal (std `std`) weights and zero biases for
    `trunc_normal_types` (Linear by default), unit weight and zero bias for LayerNorm / BatchNorm (whose running
    statistics are reset). Returns whether `module` was one of these, so the caller handles only its own cases."""
    if isinstance(module, trunc_normal_types):
        init.trunc_normal_(module.weight, std=std)
        if module.bias is not None:
            init.zeros_(module.bias)
        return True
    if isinstance(module, (nn.LayerNorm, nn.BatchNorm1d, nn.BatchNorm2d)):
        if module.weight is not None:
            init.ones_(module.weight)
        if module.bias is not None:
            init.zeros_(module.bias)
        if getattr(module, "running_mean", None) is not None:
            init.zeros_(module.running_mean)
            init.ones_(module.running_var)
            init.zeros_(module.num_batches_tracked)
        return True
    return False


def check_pixel_values(pixel_values: torch.Tensor | None, num_channels: int, check_finite: bool = True) -> None:
    """Fail with a clear message on input a vision model cannot use: not a 4-D float tensor, the wrong number of
    channels, an empty batch, or NaN/inf pixels (which would otherwise spread silently through every token)."""
    if pixel_values is None:
        raise ValueError("pixel_values is required")
    if not isinstance(pixel_values, torch.Tensor):
        raise TypeError(f"pixel_values must be a torch.Tensor, got {type(pixel_values).__name__}")
    if pixel_values.ndim != 4:
        raise ValueError(
            f"pixel_values must have shape (batch, channels, height, width), got {tuple(pixel_values.shape)}"
        )
    if not pixel_values.is_floating_point():
        raise TypeError(f"pixel_values must be a float tensor (use the image processor), got {pixel_values.dtype}")
    if pixel_values.shape[0] == 0:
        raise ValueError("pixel_values is an empty batch")
    if pixel_values.shape[1] != num_channels:
        raise ValueError(
            f"pixel_values has {pixel_values.shape[1]} channels but the model expects {num_channels} "
            f"(config.num_channels); convert the images (e.g. to RGB) with the model's image processor"
        )
    # any NaN/inf makes the sum non-finite; a single reduction is ~50x cheaper on CPU than isfinite().all(), which
    # then only runs to rule out a finite overflow of the sum
    if check_finite and not torch.compiler.is_compiling() and not torch.isfinite(pixel_values.sum()) and not (
            torch.isfinite(pixel_values).all()):
        raise ValueError("pixel_values contains NaN or infinite values")


def check_labels(labels: torch.Tensor, logits: torch.Tensor, num_labels: int) -> None:
    """Fail clearly on labels a classification head cannot score: another batch size, or class indices outside
    `[0, num_labels)` (which would otherwise surface as an opaque error inside the loss)."""
    if labels.shape[0] != logits.shape[0]:
        raise ValueError(f"labels has batch size {labels.shape[0]} but pixel_values has {logits.shape[0]}")
    if labels.dtype in (torch.int64, torch.int32) and labels.numel() and (
            labels.min() < 0 or labels.max() >= num_labels):
        raise ValueError(
            f"labels must be class indices in [0, {num_labels}), got values in "
            f"[{int(labels.min())}, {int(labels.max())}]; the model has num_labels={num_labels}"
        )


def image_classifier_output(model: PreTrainedModel, logits: torch.Tensor, labels: torch.Tensor | None, encoder_outputs,
                            **loss_kwargs) -> ImageClassifierOutput:
    """The `ImageClassifierOutput` of a zoo classifier: checks `labels` and computes transformers' loss for the
    config's `problem_type`, carrying the encoder's hidden states and attentions."""
    loss = None
    if labels is not None:
        check_labels(labels, logits, model.config.num_labels)
        loss = model.loss_function(labels, logits, model.config, **loss_kwargs)
    return ImageClassifierOutput(loss=loss, logits=logits, hidden_states=encoder_outputs.hidden_states,
                                 attentions=encoder_outputs.attentions)


def run_map_stages(x: torch.Tensor, stages, output_hidden_states: bool, output_attentions: bool):
    """Run the stages of a hierarchical encoder on a `(B, H, W, C)` map. Each stage is called as
    `stage(x, output_attentions)` and returns `(next_x, features, attentions)` (`features`: the map to report, e.g.
    before downsampling) or `(next_x, attentions)` (reports `next_x`). Returns `(x, maps, attentions)`: `maps` holds
    the input map and each stage's features when `output_hidden_states`, else None; `attentions` likewise."""
    maps = [x] if output_hidden_states else None
    attentions = [] if output_attentions else None
    for stage in stages:
        out = stage(x, output_attentions)
        x, probs = out[0], out[-1]
        if output_hidden_states:
            maps.append(out[1] if len(out) == 3 else x)
        if output_attentions:
            attentions.append(probs)
    return x, maps, attentions


def stage_hidden_states(maps: list[torch.Tensor] | None) -> tuple[tuple | None, tuple | None]:
    """`(hidden_states, reshaped_hidden_states)` of a hierarchical encoder from its `(B, H, W, C)` stage maps:
    `(B, H*W, C)` tokens and `(B, C, H, W)` maps; `(None, None)` when `maps` is None."""
    if maps is None:
        return None, None
    return (tuple(m.reshape(m.shape[0], -1, m.shape[-1]) for m in maps),
            tuple(m.permute(0, 3, 1, 2) for m in maps))


def hierarchical_encoder_output(output_class, x: torch.Tensor, maps, attentions, final_norm: nn.Module | None = None,
                                pool: bool = True):
    """The output of a hierarchical encoder from `run_map_stages`: the last map as `(B, H*W, C)` tokens (through
    `final_norm`, if any), their average as `pooler_output` (if `pool`), and the collected hidden states / maps /
    attentions."""
    sequence = x.reshape(x.shape[0], -1, x.shape[-1])
    if final_norm is not None:
        sequence = final_norm(sequence)
    hidden_states, reshaped = stage_hidden_states(maps)
    return output_class(
        last_hidden_state=sequence, pooler_output=sequence.mean(dim=1) if pool else None, hidden_states=hidden_states,
        reshaped_hidden_states=reshaped, attentions=tuple(attentions) if attentions is not None else None,
    )


class NormedStagesBackbone(BackboneMixin):
    """Backbone of a hierarchical zoo encoder: the NCHW map of every selected stage (`config.out_features`) with its
    own channel LayerNorm, as the official detection/segmentation backbones add them. The encoder sits under
    `base_model_prefix` and returns `reshaped_hidden_states` (stem, then each stage)."""

    def build_stage_norms(self, eps: float) -> None:
        self.hidden_states_norms = nn.ModuleDict(
            {stage: nn.LayerNorm(channels, eps=eps) for stage, channels in zip(self.out_features, self.channels)})

    @can_return_tuple
    @filter_output_hidden_states
    def forward(self, pixel_values: torch.Tensor, output_hidden_states: bool | None = None,
                output_attentions: bool | None = None, **kwargs) -> BackboneOutput:
        encoder = getattr(self, self.base_model_prefix)
        outputs = encoder(pixel_values, output_hidden_states=True, output_attentions=output_attentions,
                          return_dict=True)
        maps = outputs.reshaped_hidden_states
        feature_maps = tuple(self.hidden_states_norms[stage](hidden.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
                             for stage, hidden in zip(self.stage_names, maps) if stage in self.out_features)
        return BackboneOutput(feature_maps=feature_maps, hidden_states=maps, attentions=outputs.attentions)


class PooledLinearClassifierMixin:
    """The head most zoo classifiers share: a Linear on the encoder's `pooler_output` (Identity when
    `num_labels == 0`), the encoder stored under `base_model_prefix`."""

    def add_pooled_classifier(self, encoder: nn.Module, in_features: int) -> None:
        setattr(self, self.base_model_prefix, encoder)
        self.num_labels = self.config.num_labels
        self.classifier = nn.Linear(in_features, self.num_labels) if self.num_labels > 0 else nn.Identity()

    def classify_pooled(self, pixel_values, labels, loss_kwargs: dict, **encoder_kwargs) -> ImageClassifierOutput:
        # the encoder's output is used by field, whatever config.return_dict
        outputs = getattr(self, self.base_model_prefix)(pixel_values, return_dict=True, **encoder_kwargs)
        return image_classifier_output(self, self.classifier(outputs.pooler_output), labels, outputs, **loss_kwargs)

    @can_return_tuple
    def forward(self, pixel_values: torch.Tensor | None = None, labels: torch.Tensor | None = None,
                output_hidden_states: bool | None = None, output_attentions: bool | None = None,
                **kwargs) -> ImageClassifierOutput:
        """Logits of the pooled features; with `labels` the loss (`config.problem_type`). Models whose encoder
        takes more arguments (e.g. `interpolate_pos_encoding`) define their own forward around `classify_pooled`."""
        return self.classify_pooled(pixel_values, labels, kwargs, output_hidden_states=output_hidden_states,
                                    output_attentions=output_attentions)
