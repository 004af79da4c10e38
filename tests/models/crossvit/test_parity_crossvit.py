"""CrossViT parity: the zoo model equals timm's `CrossVit` (several configs, dagger stem included, real photos) and
the official IBM/CrossViT code (stored fixtures made by tests/fixtures/make_crossvit_official_fixture.py)."""

import json
from functools import partial
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from hf_vision_zoo import registry
from hf_vision_zoo.conversion import convert_to_model
from hf_vision_zoo.conversion.crossvit import convert_state_dict
from hf_vision_zoo.models.crossvit import CrossVitConfig, CrossVitForImageClassification

timm = pytest.importorskip("timm")
from timm.models.crossvit import CrossVit  # noqa: E402

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "crossvit_official"
ATOL = 1e-5


def _perturb(model: nn.Module, std: float = 0.1, seed: int = 0) -> nn.Module:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=generator) * std)
    return model.eval()


def _timm_custom(image_size, **kwargs) -> nn.Module:
    """timm's CrossVit for per-branch sizes `image_size` (timm takes the input size and per-branch scales)."""
    scale = tuple(s / image_size[0] + 1e-9 for s in image_size)  # + eps: timm truncates size * scale to int
    model = CrossVit(img_size=image_size[0], img_scale=scale, **kwargs)
    assert [s[0] for s in model.img_size_scaled] == list(image_size)
    return model


# (name, timm model, zoo config) for custom small configs; every one perturbed with std 0.1
_CUSTOM = {
    "two_branch_eps1e-6": (
        dict(image_size=[36, 32], patch_size=[6, 8], embed_dim=[16, 32], depth=[[1, 2, 0], [1, 2, 0]],
             num_heads=[2, 2], mlp_ratio=[2, 2, 1], qkv_bias=True, num_classes=7),
        dict(image_size=[36, 32], patch_size=[6, 8], embed_dim=[16, 32], depth=[[1, 2, 0], [1, 2, 0]],
             num_heads=[2, 2], mlp_ratio=[2, 2, 1], qkv_bias=True, num_labels=7),
    ),
    "dagger": (
        dict(image_size=[48, 32], patch_size=[12, 16], embed_dim=[16, 32], depth=[[1, 2, 0]], num_heads=[4, 4],
             mlp_ratio=[3, 3, 1], qkv_bias=True, multi_conv=True, num_classes=4),
        dict(image_size=[48, 32], patch_size=[12, 16], embed_dim=[16, 32], depth=[[1, 2, 0]], num_heads=[4, 4],
             mlp_ratio=[3, 3, 1], qkv_bias=True, multi_conv=True, num_labels=4),
    ),
    "cross_depth_unequal_heads_no_bias": (
        dict(image_size=[30, 32], patch_size=[6, 8], embed_dim=[12, 24], depth=[[1, 2, 2], [2, 2, 1]],
             num_heads=[2, 4], mlp_ratio=[3, 2], qkv_bias=False, num_classes=3,
             norm_layer=partial(nn.LayerNorm, eps=1e-5)),
        dict(image_size=[30, 32], patch_size=[6, 8], embed_dim=[12, 24], depth=[[1, 2, 2], [2, 2, 1]],
             num_heads=[2, 4], mlp_ratio=[3, 2], qkv_bias=False, num_labels=3, layer_norm_eps=1e-5),
    ),
}


@pytest.mark.parametrize("name", list(_CUSTOM))
def test_matches_timm_custom_configs(name):
    timm_kwargs, zoo_kwargs = _CUSTOM[name]
    torch.manual_seed(0)
    reference = _perturb(_timm_custom(**timm_kwargs))
    config = CrossVitConfig(**zoo_kwargs)
    model = convert_to_model("crossvit", reference.state_dict(), config, "timm")
    generator = torch.Generator().manual_seed(1)
    # the input at branch 0's size, at branch 1's size (the other branch is resized) and at a third, non-square size
    for size in [(config.image_size[0],) * 2, (config.image_size[1],) * 2, (41, 37)]:
        x = torch.randn(3, 3, *size, generator=generator)
        with torch.no_grad():
            expected = reference(x)
            got = model(x)
            features = reference.forward_features(x)
            encoded = model.crossvit(x)
        torch.testing.assert_close(got.logits, expected, atol=ATOL, rtol=0)
        for branch, (ours, theirs) in enumerate(zip(encoded.branch_last_hidden_states, features)):
            torch.testing.assert_close(ours, theirs, atol=ATOL, rtol=0, msg=f"branch {branch} tokens at {size}")
        torch.testing.assert_close(encoded.pooler_output, reference.forward_head(features, pre_logits=True),
                                   atol=ATOL, rtol=0)


@pytest.mark.slow
@pytest.mark.parametrize("timm_name", ["crossvit_tiny_240", "crossvit_9_dagger_240"])
def test_matches_timm_registered_models(timm_name):
    """timm's own model definitions (full size, random weights perturbed) equal the registered zoo variants."""
    torch.manual_seed(0)
    reference = _perturb(timm.create_model(timm_name, pretrained=False))
    model = convert_to_model("crossvit", reference.state_dict(), registry.get_config(f"{timm_name}.in1k"), "timm")
    x = torch.randn(2, 3, 240, 240, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        torch.testing.assert_close(model(x).logits, reference(x), atol=ATOL, rtol=0)


def test_real_photos_through_our_processor_vs_timm_preprocessing(photos):
    """On real photos the official/timm eval transform (resize 274 bicubic, torchvision centre crop 240) and our PIL
    processor give identical pixels and our torchvision processor differs by at most 2 8-bit levels; so the zoo model
    on our pixels equals timm on timm's pixels to 1e-5 (PIL) / gives the same top-1 (torchvision)."""
    from timm.data import create_transform, resolve_data_config

    torch.manual_seed(0)
    reference = _perturb(_timm_custom(**{**_CUSTOM["two_branch_eps1e-6"][0], "image_size": [240, 224],
                                         "patch_size": [12, 16]}))
    config = CrossVitConfig(**{**_CUSTOM["two_branch_eps1e-6"][1], "image_size": [240, 224],
                               "patch_size": [12, 16]})
    model = convert_to_model("crossvit", reference.state_dict(), config, "timm")
    pretrained_cfg = timm.models.get_pretrained_cfg("crossvit_tiny_240.in1k").to_dict()
    timm_transform = create_transform(**resolve_data_config({}, pretrained_cfg=pretrained_cfg))
    ours = {backend: registry.create_image_processor("crossvit_tiny_240.in1k", backend=backend)
            for backend in ("torchvision", "pil")}
    one_level = 1 / 255 / min(ours["pil"].image_std)
    for name, photo in photos.items():  # astronaut (square), chelsea and coffee (odd crop margins)
        expected_pixels = timm_transform(photo).unsqueeze(0)
        pil_pixels = ours["pil"](photo, return_tensors="pt").pixel_values
        tv_pixels = ours["torchvision"](photo, return_tensors="pt").pixel_values
        assert pil_pixels.shape == tv_pixels.shape == expected_pixels.shape == (1, 3, 240, 240)
        torch.testing.assert_close(pil_pixels, expected_pixels, atol=1e-6, rtol=0)
        difference = (tv_pixels - expected_pixels).abs()
        assert difference.mean() < 1e-3 and difference.max() <= 2 * one_level, f"{name}: {difference.max()}"
        with torch.no_grad():
            timm_logits = reference(expected_pixels)
            torch.testing.assert_close(model(pil_pixels).logits, timm_logits, atol=ATOL, rtol=0)
            assert model(tv_pixels).logits.argmax() == timm_logits.argmax(), name


def _official_fixtures():
    recipe = json.loads((FIXTURES / "recipe.json").read_text())
    return recipe, sorted(recipe["fixtures"])


@pytest.mark.parametrize("name", _official_fixtures()[1])
def test_matches_official_code_fixture(name):
    recipe, _ = _official_fixtures()
    spec = recipe["fixtures"][name]
    tensors = load_file(str(FIXTURES / spec["file"]))
    state_dict = {k[len("state_dict."):]: v for k, v in tensors.items() if k.startswith("state_dict.")}
    kwargs = spec["constructor_kwargs"]
    eps = float(spec["norm_layer"].split("eps=")[1].rstrip(")"))
    config = CrossVitConfig(image_size=kwargs["img_size"], patch_size=kwargs["patch_size"],
                            embed_dim=kwargs["embed_dim"], depth=kwargs["depth"], num_heads=kwargs["num_heads"],
                            mlp_ratio=kwargs["mlp_ratio"], qkv_bias=kwargs["qkv_bias"],
                            multi_conv=kwargs.get("multi_conv", False), num_labels=kwargs["num_classes"],
                            layer_norm_eps=eps)
    model = convert_to_model("crossvit", state_dict, config, "official")
    pixel_values = tensors["pixel_values"]
    with torch.no_grad():
        out = model(pixel_values)
        encoded = model.crossvit(pixel_values)
    torch.testing.assert_close(out.logits, tensors["logits"], atol=ATOL, rtol=0)
    for i, tokens in enumerate(encoded.branch_last_hidden_states):
        torch.testing.assert_close(tokens[:, 0], tensors[f"features.{i}"], atol=ATOL, rtol=0)


def test_official_fixture_recipe_is_complete():
    recipe, names = _official_fixtures()
    assert recipe["official_repo"] == "https://github.com/IBM/CrossViT" and len(recipe["commit"]) == 40
    assert {"tiny_plain", "dagger_upsample", "cross_depth_heads"} <= set(names)
    for name in names:
        path = FIXTURES / recipe["fixtures"][name]["file"]
        assert path.stat().st_size < 1_000_000


def test_official_and_timm_layouts_convert_to_the_same_weights():
    """The official checkpoint of a fixture, renamed as timm does (`pos_embed.0` -> `pos_embed_0`), converts to the
    same zoo state dict."""
    recipe, _ = _official_fixtures()
    tensors = load_file(str(FIXTURES / recipe["fixtures"]["tiny_plain"]["file"]))
    official = {k[len("state_dict."):]: v for k, v in tensors.items() if k.startswith("state_dict.")}
    as_timm = {(k.replace(".", "_") if k.startswith(("pos_embed", "cls_token")) else k): v for k, v in official.items()}
    a, b = convert_state_dict(official, None, "official"), convert_state_dict(as_timm, None, "timm")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert isinstance(CrossVitForImageClassification, type)
