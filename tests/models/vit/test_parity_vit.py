"""The zoo's ViT equals timm's `VisionTransformer` and transformers' `ViTModel` / `ViTForImageClassification`.

Random weights perturbed with std 0.1 (std 0.02 would hide bugs), fp32, atol 1e-5; several configs (class token or
not, register tokens, both position-table layouts, mean pooling with fc_norm, LayerScale, no qkv bias), real photos,
and a non-native input size through `interpolate_pos_encoding`.
"""

import pytest
import timm
import torch
from safetensors.torch import load_file
from timm.models.vision_transformer import VisionTransformer
from transformers import ViTConfig, ViTForImageClassification, ViTModel

from hf_vision_zoo.conversion import convert_to_model
from hf_vision_zoo.conversion import vit as vit_conversion
from hf_vision_zoo.models.vit import VitForImageClassification, VitModel
from hf_vision_zoo.registry import create_image_processor

ATOL = 1e-5


def perturb(model: torch.nn.Module, seed: int = 0, std: float = 0.1) -> torch.nn.Module:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn(param.shape, generator=generator) * std)
    return model.eval()


def photo_batch(photos, size: int) -> torch.Tensor:
    processor = create_image_processor("vit", size={"height": size, "width": size}, do_center_crop=False)
    return processor([photos[n] for n in ("astronaut", "chelsea", "coffee")], return_tensors="pt").pixel_values


TIMM_CONFIGS = {
    "cls_token": dict(),
    "no_class_token_mean_pool": dict(class_token=False, global_pool="avg"),
    "registers_no_embed_class": dict(reg_tokens=2, no_embed_class=True),
    "registers_embedded_prefix": dict(reg_tokens=1),
    "mean_pool_fc_norm_with_cls": dict(global_pool="avg"),
    "layer_scale_no_qkv_bias": dict(init_values=1e-5, qkv_bias=False),
    "mlp_ratio_3": dict(mlp_ratio=3.0),
}


def timm_vit(**kwargs) -> VisionTransformer:
    torch.manual_seed(0)
    base = dict(img_size=32, patch_size=8, embed_dim=48, depth=2, num_heads=3, num_classes=5)
    return perturb(VisionTransformer(**{**base, **kwargs}))


@pytest.mark.parametrize("name", list(TIMM_CONFIGS))
def test_matches_timm(name, photos):
    reference = timm_vit(**TIMM_CONFIGS[name])
    state = reference.state_dict()
    config = vit_conversion.infer_config(state, "timm", num_attention_heads=3)
    model = convert_to_model("vit", state, config, "timm")
    pixel_values = photo_batch(photos, 32)
    with torch.no_grad():
        features = reference.forward_features(pixel_values)
        expected = reference.forward_head(features)
        out = model(pixel_values, output_hidden_states=True)
        encoder = model.vit(pixel_values)
    torch.testing.assert_close(out.logits, expected, atol=ATOL, rtol=0)
    # token features too (with fc_norm, timm's final norm is Identity, as ours)
    torch.testing.assert_close(encoder.last_hidden_state, features, atol=ATOL, rtol=0)
    assert config.num_prefix_tokens == reference.num_prefix_tokens
    assert config.fc_norm == (TIMM_CONFIGS[name].get("global_pool") == "avg")


@pytest.mark.parametrize("size", [48, 24], ids=["larger", "smaller"])
def test_interpolated_positions_match_timm_dynamic_size(size, photos):
    """At a non-native size timm (dynamic_img_size) resizes the table bicubically with antialiasing; so does the
    zoo with interpolate_pos_encoding=True and interpolate_antialias (set by the timm converter)."""
    reference = timm_vit(dynamic_img_size=True)
    state = reference.state_dict()
    model = convert_to_model("vit", state, vit_conversion.infer_config(state, "timm", num_attention_heads=3), "timm")
    assert model.config.interpolate_antialias
    pixel_values = photo_batch(photos, size)
    with torch.no_grad():
        expected = reference(pixel_values)
        got = model(pixel_values, interpolate_pos_encoding=True).logits
    torch.testing.assert_close(got, expected, atol=ATOL, rtol=0)
    with pytest.raises(ValueError, match="interpolate_pos_encoding"):
        model(pixel_values)


def test_matches_timm_registered_variant_layout():
    """A real variant's layout (ViT-Ti/16 at 224) converts with the registry config and matches timm."""
    reference = perturb(timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=7, depth=2), std=0.02)
    model = convert_to_model("vit", reference.state_dict(), vit_conversion.infer_config(
        reference.state_dict(), "timm"), "timm")
    assert (model.config.hidden_size, model.config.num_attention_heads) == (192, 3)
    pixel_values = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(model(pixel_values).logits, reference(pixel_values), atol=1e-4, rtol=0)


def transformers_config(**kwargs) -> ViTConfig:
    base = dict(hidden_size=48, num_hidden_layers=2, num_attention_heads=3, intermediate_size=96, image_size=32,
                patch_size=8, num_labels=5)
    return ViTConfig(**{**base, **kwargs})


def legacy_names(state_dict: dict) -> dict:
    """transformers 4.x / on-disk key names of a v5 ViT state dict."""
    replacements = [(".layers.", ".encoder.layer."), ("attention.q_proj", "attention.attention.query"),
                    ("attention.k_proj", "attention.attention.key"), ("attention.v_proj", "attention.attention.value"),
                    ("attention.o_proj", "attention.output.dense"), ("mlp.fc1", "intermediate.dense"),
                    ("mlp.fc2", "output.dense")]
    out = {}
    for key, value in state_dict.items():
        key = "." + key
        for old, new in replacements:
            key = key.replace(old, new)
        out[key[1:]] = value
    return out


@pytest.mark.parametrize("names", ["v5", "legacy"])
@pytest.mark.parametrize("kwargs", [{}, {"qkv_bias": False, "layer_norm_eps": 1e-6}], ids=["default", "no_bias"])
def test_matches_transformers_classifier(kwargs, names, photos):
    torch.manual_seed(0)
    config = transformers_config(**kwargs)
    reference = perturb(ViTForImageClassification(config))
    state = reference.state_dict() if names == "v5" else legacy_names(reference.state_dict())
    zoo_config = vit_conversion.config_from_transformers(config.to_dict())
    model = convert_to_model("vit", state, zoo_config, "transformers")
    pixel_values = photo_batch(photos, 32)
    with torch.no_grad():
        expected = reference(pixel_values, output_hidden_states=True)
        got = model(pixel_values, output_hidden_states=True)
    torch.testing.assert_close(got.logits, expected.logits, atol=ATOL, rtol=0)
    for ours, theirs in zip(got.hidden_states, expected.hidden_states, strict=True):
        torch.testing.assert_close(ours, theirs, atol=ATOL, rtol=0)
    # a non-native size: both resize the table bicubically without antialiasing
    larger = photo_batch(photos, 48)
    with torch.no_grad():
        torch.testing.assert_close(model(larger, interpolate_pos_encoding=True).logits,
                                   reference(larger, interpolate_pos_encoding=True).logits, atol=ATOL, rtol=0)


def test_matches_transformers_model_with_pooler_and_mask_token(photos, tmp_path):
    """A bare `ViTModel` (dense+tanh pooler), saved to disk by transformers and converted from the file; and the
    `bool_masked_pos` path against `ViTModel(use_mask_token=True)`."""
    torch.manual_seed(0)
    config = transformers_config()
    reference = perturb(ViTModel(config, use_mask_token=True))
    reference.save_pretrained(tmp_path)
    state = load_file(tmp_path / "model.safetensors")
    zoo_config = vit_conversion.infer_config(state, "transformers", num_attention_heads=3)
    assert zoo_config.use_pooler and zoo_config.use_mask_token and zoo_config.layer_norm_eps == 1e-12
    model = convert_to_model("vit", state, zoo_config, "transformers", task="feature-extraction")
    assert isinstance(model, VitModel)
    pixel_values = photo_batch(photos, 32)
    masked = torch.rand(3, 16, generator=torch.Generator().manual_seed(0)) < 0.4
    with torch.no_grad():
        for kwargs in ({}, {"bool_masked_pos": masked}):
            expected = reference(pixel_values, **kwargs)
            got = model(pixel_values, **kwargs)
            torch.testing.assert_close(got.last_hidden_state, expected.last_hidden_state, atol=ATOL, rtol=0)
            torch.testing.assert_close(got.pooler_output, expected.pooler_output, atol=ATOL, rtol=0)


def test_bool_masked_pos_changes_only_through_the_mask_token():
    config = transformers_config()
    torch.manual_seed(0)
    model = perturb(VitForImageClassification(vit_conversion.config_from_transformers(
        config.to_dict(), use_mask_token=True)))
    pixel_values = torch.randn(2, 3, 32, 32)
    nothing = torch.zeros(2, 16, dtype=torch.bool)
    with torch.no_grad():
        plain = model(pixel_values).logits
        torch.testing.assert_close(model(pixel_values, bool_masked_pos=nothing).logits, plain, atol=0, rtol=0)
        everything = model(pixel_values, bool_masked_pos=~nothing).logits
        other_images = model(torch.randn(2, 3, 32, 32), bool_masked_pos=~nothing).logits
    # every patch replaced: the image no longer matters
    torch.testing.assert_close(everything, other_images, atol=1e-6, rtol=0)
    assert not torch.allclose(everything, plain)
