"""The zoo's CvT is the paper's CvT: equal outputs to transformers' Cvt and to the official code on the same weights.

transformers models are built here with random weights (perturbed with std 0.1, BatchNorm statistics moved off
(0, 1)); the official model's outputs come from stored fixtures (tests/fixtures/cvt_official, recipe.json there).
"""

import json
from pathlib import Path

import pytest
import torch
import transformers
from PIL import Image
from safetensors.torch import load_file
from skimage import data as skdata

import hf_vision_zoo
from hf_vision_zoo.conversion import build_config, convert_to_model
from hf_vision_zoo.conversion.cvt import config_from_official_spec, config_from_transformers

FIXTURES = Path(__file__).parents[2] / "fixtures" / "cvt_official"
ATOL = 1e-5


def perturb(model: torch.nn.Module, seed: int = 1) -> torch.nn.Module:
    """Every float parameter + N(0, 0.1); BatchNorm running mean N(0, 0.1) and variance U(0.5, 1.5)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn(param.shape, generator=generator) * 0.1)
        for name, buffer in model.named_buffers():
            if name.endswith("running_mean"):
                buffer.copy_(torch.randn(buffer.shape, generator=generator) * 0.1)
            elif name.endswith("running_var"):
                buffer.copy_(torch.rand(buffer.shape, generator=generator) + 0.5)
    return model.eval()


def photos(size: tuple[int, int], backend: str = "torchvision") -> torch.Tensor:
    processor = hf_vision_zoo.create_image_processor("cvt", backend=backend, size={"height": size[0], "width": size[1]},
                                                     do_center_crop=False)
    images = [Image.fromarray(skdata.astronaut()), Image.fromarray(skdata.chelsea()), Image.fromarray(skdata.coffee())]
    return processor(images, return_tensors="pt").pixel_values


def inputs(size: tuple[int, int]) -> torch.Tensor:
    return torch.cat([photos(size), torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(0))])


def _stages(n, **kw):
    base = dict(patch_sizes=[7, 3, 3][:n], patch_stride=[4, 2, 2][:n], patch_padding=[2, 1, 1][:n],
                mlp_ratio=[4.0] * n, attention_drop_rate=[0.0] * n, drop_rate=[0.0] * n, drop_path_rate=[0.0] * n,
                qkv_bias=[True] * n, cls_token=[False] * (n - 1) + [True], qkv_projection_method=["dw_bn"] * n,
                kernel_qkv=[3] * n, padding_kv=[1] * n, stride_kv=[2] * n, padding_q=[1] * n, stride_q=[1] * n)
    return {**base, **kw}


# transformers' CvtStage indexes its drop-path list by the stage number, so every stage needs depth > its index;
# a config without a class token builds but its CvtForImageClassification.forward fails (see test_equals_transformers)
TRANSFORMERS_CONFIGS = {
    # name: (transformers CvtConfig kwargs, input size)
    "cvt13_layout_64px": (dict(embed_dim=[16, 32, 48], num_heads=[1, 2, 3], depth=[1, 2, 3], num_labels=10,
                               **_stages(3)), (64, 64)),
    "rectangular_non_multiple": (dict(embed_dim=[16, 32, 48], num_heads=[2, 2, 4], depth=[1, 2, 3], num_labels=4,
                                      **_stages(3)), (70, 45)),
    "no_cls_kernel5_kv_stride1_no_bias": (dict(embed_dim=[24, 48], num_heads=[2, 4], depth=[2, 2], num_labels=3,
                                               **_stages(2, cls_token=[False, False], kernel_qkv=[5, 5],
                                                         padding_kv=[2, 2], padding_q=[2, 2], stride_kv=[1, 2],
                                                         qkv_bias=[False, False], mlp_ratio=[2.0, 3.0])),
                                          (96, 80)),
}


def transformers_reference(kwargs):
    torch.manual_seed(0)
    return perturb(transformers.CvtForImageClassification(transformers.CvtConfig(**kwargs)))


@pytest.mark.parametrize("name", sorted(TRANSFORMERS_CONFIGS))
def test_equals_transformers(name, tmp_path):
    kwargs, size = TRANSFORMERS_CONFIGS[name]
    reference = transformers_reference(kwargs)
    reference.save_pretrained(tmp_path)  # the names transformers writes to disk, and the in-memory ones
    on_disk = load_file(str(tmp_path / "model.safetensors"))
    pixels = inputs(size)
    with torch.no_grad():
        expected_encoder = reference.cvt(pixels, output_hidden_states=True)
        if kwargs["cls_token"][-1]:
            expected = reference(pixels).logits
        else:  # transformers' classifier fails without a class token (outputs[1] of a 1-tuple); its intended head:
            tokens = expected_encoder.last_hidden_state.flatten(2).transpose(1, 2)
            expected = reference.classifier(reference.layernorm(tokens).mean(dim=1))
        for state in (reference.state_dict(), on_disk):
            config = build_config("cvt", state, "transformers", config_file=tmp_path / "config.json")
            assert config.hidden_act == "gelu"
            model = convert_to_model("cvt", state, config, "transformers")
            torch.testing.assert_close(model(pixels).logits, expected, atol=ATOL, rtol=0)
        # CvtModel: the last map, the class token and every stage's map
        ours = model.cvt(pixels, output_hidden_states=True)
        torch.testing.assert_close(ours.reshaped_hidden_states[-1], expected_encoder.last_hidden_state, atol=ATOL,
                                   rtol=0)
        if kwargs["cls_token"][-1]:
            torch.testing.assert_close(ours.cls_token_value, expected_encoder.cls_token_value, atol=ATOL, rtol=0)
        else:
            assert ours.cls_token_value is None and expected_encoder.cls_token_value is None
        assert len(ours.reshaped_hidden_states) == len(expected_encoder.hidden_states) + 1  # + the stem
        for a, b in zip(ours.reshaped_hidden_states[1:], expected_encoder.hidden_states):
            torch.testing.assert_close(a, b, atol=ATOL, rtol=0)


def test_equals_transformers_in_training_mode():
    """BatchNorm on batch statistics (no folding) and identical losses and gradients."""
    kwargs, size = TRANSFORMERS_CONFIGS["cvt13_layout_64px"]
    reference = transformers_reference(kwargs).train()
    model = convert_to_model("cvt", reference.state_dict(), config_from_transformers(reference.config.to_dict()),
                             "transformers").train()
    pixels, labels = inputs(size), torch.tensor([0, 3, 9, 1, 2])
    ours, theirs = model(pixels, labels=labels), reference(pixels, labels=labels)
    torch.testing.assert_close(ours.logits, theirs.logits, atol=ATOL, rtol=0)
    ours.loss.backward()
    theirs.loss.backward()
    grad = model.cvt.stages[2].blocks[0].attn.conv_proj_k.conv.weight.grad
    expected = reference.cvt.encoder.stages[2].layers[0].attention.attention.convolution_projection_key \
        .convolution_projection.convolution.weight.grad
    torch.testing.assert_close(grad, expected, atol=1e-5, rtol=1e-4)


@pytest.mark.slow
def test_cvt13_real_photos_through_both_processors():
    """The real CvT-13 (20M) on real photos with the official 224 preprocessing, through both processor backends."""
    reference = transformers_reference(dict(num_labels=1000, drop_path_rate=[0.0, 0.0, 0.0]))
    config = config_from_transformers(reference.config.to_dict())
    assert sum(p.numel() for p in reference.parameters()) == 19_997_480
    model = convert_to_model("cvt", reference.state_dict(), config, "transformers")
    images = [Image.fromarray(skdata.astronaut()), Image.fromarray(skdata.coffee())]
    for backend in ("torchvision", "pil"):
        processor = hf_vision_zoo.create_image_processor("cvt_13_224.in1k", backend=backend)
        pixels = processor(images, return_tensors="pt").pixel_values
        assert pixels.shape == (2, 3, 224, 224)
        with torch.no_grad():
            torch.testing.assert_close(model(pixels).logits, reference(pixels).logits, atol=1e-4, rtol=1e-5)


def official_fixtures():
    return sorted(FIXTURES.glob("*.safetensors")) if FIXTURES.is_dir() else []


def test_official_fixtures_present():
    recipe = json.loads((FIXTURES / "recipe.json").read_text())
    assert sorted(recipe["fixtures"]) == [p.stem for p in official_fixtures()] and len(recipe["fixtures"]) >= 3
    assert recipe["commit_short"] == "46ab3c8"
    assert all(p.stat().st_size < 500_000 for p in official_fixtures())


@pytest.mark.parametrize("path", official_fixtures(), ids=lambda p: p.stem)
def test_equals_official_code(path):
    tensors = load_file(str(path))
    entry = json.loads((FIXTURES / "recipe.json").read_text())["fixtures"][path.stem]
    state = {k[len("state_dict."):]: v for k, v in tensors.items() if k.startswith("state_dict.")}
    act = "quick_gelu" if entry["act_layer"] == "QuickGELU" else "gelu"
    config = config_from_official_spec(entry["spec"], hidden_act=act, num_labels=entry["num_classes"],
                                       image_size=entry["input_size"])
    inferred = build_config("cvt", state, "official", num_heads=config.num_heads,
                            **{k: getattr(config, k) for k in ("stride_kv", "padding_kv", "padding_q",
                                                               "qkv_projection_method")})
    for field in ("embed_dim", "depth", "patch_sizes", "kernel_qkv", "mlp_ratio", "qkv_bias", "cls_token"):
        assert getattr(inferred, field) == getattr(config, field), field
    model = convert_to_model("cvt", state, config, "official")
    pixels = tensors["pixel_values"]
    with torch.no_grad():
        out = model(pixels, output_hidden_states=True)
        torch.testing.assert_close(out.logits, tensors["logits"], atol=ATOL, rtol=0)
        encoder = model.cvt(pixels, output_hidden_states=True)
        torch.testing.assert_close(encoder.pooler_output, tensors["features"], atol=ATOL, rtol=0)
        for i in range(len(config.depth)):
            torch.testing.assert_close(encoder.reshaped_hidden_states[i + 1], tensors[f"stage{i}"], atol=ATOL, rtol=0)
        if "cls_token" in tensors:
            torch.testing.assert_close(encoder.cls_token_value, tensors["cls_token"], atol=ATOL, rtol=0)
    backbone_config = config_from_official_spec(entry["spec"], hidden_act=act, out_indices=[1, 2])
    backbone = convert_to_model("cvt", state, backbone_config, "official", task="backbone")
    with torch.no_grad():
        maps = backbone(pixels).feature_maps
    torch.testing.assert_close(maps[0], tensors["stage0"], atol=ATOL, rtol=0)


def test_official_weights_with_the_wrong_activation_do_not_match():
    """The activation matters at this tolerance: QuickGELU weights run with GELU give other logits."""
    path = FIXTURES / "cvt13_layout_quickgelu.safetensors"
    tensors = load_file(str(path))
    entry = json.loads((FIXTURES / "recipe.json").read_text())["fixtures"][path.stem]
    state = {k[len("state_dict."):]: v for k, v in tensors.items() if k.startswith("state_dict.")}
    config = config_from_official_spec(entry["spec"], hidden_act="gelu", num_labels=entry["num_classes"])
    with torch.no_grad():
        logits = convert_to_model("cvt", state, config, "official")(tensors["pixel_values"]).logits
    assert (logits - tensors["logits"]).abs().max() > 1e-3


def test_parity_would_catch_a_wrong_weight():
    """Sanity of the method: swapping the key and value projections of one block breaks parity."""
    kwargs, size = TRANSFORMERS_CONFIGS["cvt13_layout_64px"]
    reference = transformers_reference(kwargs)
    state = dict(reference.state_dict())
    prefix = "cvt.encoder.stages.1.layers.1.attention.attention.projection_"
    state[prefix + "key.weight"], state[prefix + "value.weight"] = state[prefix + "value.weight"], \
        state[prefix + "key.weight"]
    model = convert_to_model("cvt", state, config_from_transformers(reference.config.to_dict()), "transformers")
    pixels = inputs(size)
    with torch.no_grad():
        assert (model(pixels).logits - reference(pixels).logits).abs().max() > 1e-3
