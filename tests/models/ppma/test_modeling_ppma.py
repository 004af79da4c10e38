"""PPMA specifics: the efficient polyline path mask equals its naive per-path construction, the attention outputs
are what the returned attention maps say, the published sizes, bad configs/inputs, preprocessing, conversion CLI."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from huggingface_hub.errors import StrictDataclassError
from safetensors.torch import load_file

import hf_vision_zoo  # noqa: F401  (registers the Auto classes)
from hf_vision_zoo import registry
from hf_vision_zoo.layers import get_attention_function
from hf_vision_zoo.layers.structured_mask import naive_polyline_path_mask, polyline_path_mask, segment_sum
from hf_vision_zoo.models.ppma import PpmaConfig, PpmaForImageClassification, PpmaModel
from hf_vision_zoo.models.ppma.modeling_ppma import PpmaAttention

ROOT = Path(__file__).resolve().parents[3]


# ---------------------------------------------------------------- the polyline path mask

@pytest.mark.parametrize("height,width", [(1, 1), (1, 5), (4, 1), (2, 3), (3, 3), (5, 4)])
def test_efficient_polyline_mask_equals_naive_path_products(height, width):
    generator = torch.Generator().manual_seed(height * 10 + width)
    # random log-decays of several magnitudes (softplus(.) * -exp(A_log) is always <= 0)
    alpha = -torch.rand(2, 3, height, width, generator=generator, dtype=torch.float64) * 3
    beta = -torch.rand(2, 3, height, width, generator=generator, dtype=torch.float64) * 0.3
    for vertical_first in (False, True):
        efficient = polyline_path_mask(alpha, beta, vertical_first=vertical_first)
        products = naive_polyline_path_mask(alpha, beta, vertical_first=vertical_first, log=False)
        assert efficient.shape == (2, 3, height * width, height * width)
        torch.testing.assert_close(efficient.exp(), products, atol=1e-12, rtol=1e-10)
        torch.testing.assert_close(efficient, products.log(), atol=1e-12, rtol=1e-10)
    # the two polyline orders are each other's transpose; a token's mask with itself is 1 (log 0)
    forward, backward = polyline_path_mask(alpha, beta), polyline_path_mask(alpha, beta, vertical_first=True)
    assert torch.equal(backward, forward.transpose(-1, -2))
    assert torch.equal(forward.diagonal(dim1=-2, dim2=-1), torch.zeros(2, 3, height * width, dtype=torch.float64))


def test_polyline_mask_hand_example():
    """3x3 grid: from (0, 0) to (2, 1) the path enters (0, 1) horizontally, then (1, 1) and (2, 1) vertically."""
    alpha = torch.arange(9.0).view(3, 3) * -0.01
    beta = torch.arange(9.0).view(3, 3) * -0.1
    mask = polyline_path_mask(alpha, beta)
    assert mask[0 * 3 + 0, 2 * 3 + 1].item() == pytest.approx(alpha[0, 1] + beta[1, 1] + beta[2, 1])
    # the other order: down column 0 to row 2 (entering (1, 0), (2, 0)), then right to (2, 1)
    other = polyline_path_mask(alpha, beta, vertical_first=True)
    assert other[0, 7].item() == pytest.approx(beta[1, 0] + beta[2, 0] + alpha[2, 1])


def test_segment_sum_definition():
    x = torch.randn(4, 7, dtype=torch.float64)
    s = segment_sum(x)
    for i in range(7):
        for j in range(7):
            lo, hi = min(i, j), max(i, j)
            assert s[:, i, j].tolist() == pytest.approx(x[:, lo + 1:hi + 1].sum(-1).tolist(), abs=1e-12)


def test_raster_rotary_embedding_is_relative():
    """q.k after rotation depends only on the raster offset of the two tokens (RoPE's property), and keeps norms."""
    from hf_vision_zoo.layers.rotary import apply_rotary, grid_rotary_sin_cos, rotary_frequencies

    frequencies = rotary_frequencies(8).double()
    assert frequencies[0] == frequencies[1] == 1.0 and frequencies[-1] == pytest.approx(1e-4)
    sin, cos = grid_rotary_sin_cos(frequencies, 3, 4)
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(8, generator=g, dtype=torch.float64), torch.randn(8, generator=g, dtype=torch.float64)
    rq, rk = apply_rotary(q.expand(3, 4, 8), sin, cos), apply_rotary(k.expand(3, 4, 8), sin, cos)
    torch.testing.assert_close(rq.norm(dim=-1), q.norm().expand(3, 4))
    # (0, 1)-(0, 0) and (2, 3)-(2, 2) are one raster step apart, as are (1, 0)-(0, 3): the row wraps
    dot = lambda a, b: (rq[a] * rk[b]).sum()  # noqa: E731
    torch.testing.assert_close(dot((0, 1), (0, 0)), dot((2, 3), (2, 2)))
    torch.testing.assert_close(dot((0, 1), (0, 0)), dot((1, 0), (0, 3)))
    with pytest.raises(ValueError, match="even"):
        rotary_frequencies(7)


# ---------------------------------------------------------------- attention

def _attention_inputs(chunkwise: bool, height=5, width=3, seed=0):
    config = PpmaConfig(image_size=32, embed_dims=[16], depths=[1], num_heads=[2], mlp_ratios=[2],
                        chunkwise_recurrents=[chunkwise], layerscales=[False], num_labels=3)
    torch.manual_seed(seed)
    attention = PpmaAttention(config, 16, 2, chunkwise).eval()
    for p in attention.parameters():
        torch.nn.init.normal_(p, std=0.3)
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(2, 2, height, width, 8, generator=g, dtype=torch.float64) for _ in range(3))
    alpha, beta = (-torch.rand(2, 2, height, width, generator=g, dtype=torch.float64) for _ in range(2))
    return attention.double(), q, k, v, alpha, beta


def test_full_attention_is_the_average_over_both_polylines_with_the_naive_mask():
    """(float64 inputs; the eager backend takes its softmax in float32, hence atol 1e-6.)"""
    attention, q, k, v, alpha, beta = _attention_inputs(chunkwise=False)
    out, probs = attention._full(get_attention_function(attention.config, True), q, k, v, alpha, beta, True)
    qf, kf, vf = (t.flatten(2, 3) for t in (q, k, v))
    logits = qf @ kf.transpose(-1, -2) * attention.scaling
    expected_probs = 0.5 * (torch.softmax(logits + naive_polyline_path_mask(alpha, beta), -1)
                            + torch.softmax(logits + naive_polyline_path_mask(alpha, beta, True), -1))
    torch.testing.assert_close(probs, expected_probs, atol=1e-6, rtol=0)
    torch.testing.assert_close(out, (expected_probs @ vf).transpose(1, 2), atol=1e-6, rtol=0)


def test_axial_attention_rows_then_columns_and_back():
    """Chunkwise stages: out = (C R v + R C v) / 2 with R / C the per-row / per-column masked attentions; the
    returned (HW x HW) map is exactly the linear map applied to v, rows summing to one. Checked for eager and SDPA."""
    attention, q, k, v, alpha, beta = _attention_inputs(chunkwise=True)
    batch, heads, height, width, d = q.shape
    s = attention.scaling
    # R[b, g, row, wi, wj] and C[b, g, col, hi, hj], written plainly
    rows = torch.softmax(torch.einsum("bghid,bghjd->bghij", q, k) * s + segment_sum(alpha), -1)
    cols = torch.softmax(torch.einsum("bgiwd,bgjwd->bgwij", q, k) * s
                         + segment_sum(beta.transpose(-1, -2)), -1)
    r = lambda x: torch.einsum("bghij,bghjd->bghid", rows, x)  # noqa: E731
    c = lambda x: torch.einsum("bgwij,bgjwd->bgiwd", cols, x)  # noqa: E731
    expected = 0.5 * (c(r(v)) + r(c(v)))  # (B, heads, H, W, d)
    for implementation in ("eager", "sdpa"):
        attention.config._attn_implementation = implementation
        out, _ = attention._axial(get_attention_function(attention.config), q, k, v, alpha, beta, False)
        torch.testing.assert_close(out, expected.permute(0, 2, 3, 1, 4), atol=1e-6, rtol=0)
    out, probs = attention._axial(get_attention_function(attention.config, True), q, k, v, alpha, beta, True)
    torch.testing.assert_close(probs.sum(-1), torch.ones(batch, heads, height * width, dtype=q.dtype))
    via_map = (probs @ v.flatten(2, 3)).view(batch, heads, height, width, d)
    torch.testing.assert_close(via_map, expected, atol=1e-6, rtol=0)


# ---------------------------------------------------------------- published sizes

@pytest.mark.parametrize("name,params,official_keys", [
    ("ppma_tiny_224.in1k", 14_335_272, 412), ("ppma_small_224.in1k", 26_969_472, 787),
    ("ppma_base_224.in1k", 54_158_524, 1253),
])
def test_variant_sizes_match_the_official_models(name, params, official_keys):
    """Parameter counts of the official PPMAViT_T/S/B (instantiated with random weights); our state dict is the
    official one minus one rotary buffer per stage (rebuilt from the config)."""
    with torch.device("meta"):
        model = registry.create_model(name)
    assert sum(p.numel() for p in model.parameters()) == params
    assert len(model.state_dict()) == official_keys - 4
    variant = registry.get_variant(name)
    assert variant.checkpoint.endswith("/best.pth") and "ZhongchenZhao/PPMA" in variant.checkpoint
    assert variant.top1 in (82.6, 84.2, 85.0)


# ---------------------------------------------------------------- bad configs and inputs

@pytest.mark.parametrize("overrides,message", [
    (dict(num_heads=[3, 4, 8, 16]), "does not divide"),
    (dict(embed_dims=[64, 128, 240, 512], num_heads=[4, 4, 16, 16]), "odd"),  # head dim 240 / 16 = 15
    (dict(chunkwise_recurrents=[True, False]), "one per stage"),
    (dict(chunkwise_recurrents=[1, 1, 0, 0]), "chunkwise_recurrents"),
    (dict(mlp_ratios=[3, 3, 0, 3]), "positive"),
    (dict(image_size=3), "patch"),
    (dict(drop_path_rate=1.0), "drop_path_rate"),
])
def test_bad_configs_are_rejected(overrides, message):
    with pytest.raises(StrictDataclassError, match=message):
        PpmaConfig(**overrides)
    PpmaConfig(embed_dims=[60, 120, 240, 480], num_heads=[6, 6, 12, 24])  # even head dims (10): accepted


def test_unsupported_input_sizes():
    model = PpmaModel(PpmaConfig(**{**registry.get_architecture("ppma").tiny_config, "num_labels": 5})).eval()
    with pytest.raises(ValueError, match="smaller than one 4x4 patch"):
        model(torch.randn(1, 3, 3, 40))
    with torch.no_grad():  # any size of at least one patch works: the masks are built for the actual grid
        out = model(torch.randn(1, 3, 4, 37), output_hidden_states=True)
    assert [tuple(h.shape[2:]) for h in out.reshaped_hidden_states] == [(1, 10), (1, 10), (1, 5)]
    assert model.config.stage_resolutions((4, 37)) == [(1, 10), (1, 5)]


# ---------------------------------------------------------------- preprocessing and conversion CLI

def test_processor_is_the_official_eval_transform():
    """PIL backend vs the official torchvision.transforms pipeline (Resize(256, bicubic), CenterCrop(224),
    ToTensor, Normalize) on a real photo."""
    import skimage.data
    from PIL import Image
    from torchvision import transforms

    photo = Image.fromarray(skimage.data.coffee())
    official = transforms.Compose([
        transforms.Resize(256, interpolation=transforms.InterpolationMode.BICUBIC), transforms.CenterCrop(224),
        transforms.ToTensor(), transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])(photo)
    ours = registry.create_image_processor("ppma_tiny_224.in1k", backend="pil")(photo, return_tensors="pt")
    assert ours.pixel_values.shape == (1, 3, 224, 224)
    torch.testing.assert_close(ours.pixel_values[0], official, atol=0.02, rtol=0)
    assert (ours.pixel_values[0] - official).abs().mean() < 1e-3


def test_convert_script_end_to_end(tmp_path):
    """conversion/convert_ppma.py on an official-format .pth ({"model": state_dict}) -> a folder that loads through
    AutoModelForImageClassification and reproduces the official logits."""
    from transformers import AutoModelForImageClassification

    fixtures = ROOT / "tests" / "fixtures" / "ppma_official"
    recipe = json.loads((fixtures / "recipe.json").read_text())["fixtures"]["tiny_t_layout"]
    tensors = load_file(str(fixtures / "tiny_t_layout.safetensors"))
    state = {k[len("state_dict."):]: v for k, v in tensors.items() if k.startswith("state_dict.")}
    checkpoint = tmp_path / "best.pth"
    torch.save({"model": state, "epoch": 3}, checkpoint)
    spec = importlib.util.spec_from_file_location("convert_ppma", ROOT / "conversion" / "convert_ppma.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    chunkwise = ["1" if c else "0" for c in recipe["constructor_kwargs"]["chunkwise_recurrents"]]
    output = tmp_path / "converted"
    assert script.main(["--checkpoint", str(checkpoint), "--output", str(output), "--image-size", "64",
                        "--chunkwise", *chunkwise]) == 0
    model = AutoModelForImageClassification.from_pretrained(output).eval()
    assert isinstance(model, PpmaForImageClassification)
    with torch.no_grad():
        logits = model(tensors["pixel_values"]).logits
    torch.testing.assert_close(logits, tensors["logits"], atol=1e-5, rtol=0)
    processor = json.loads((output / "preprocessor_config.json").read_text())
    assert processor["size"] == {"shortest_edge": 73} and processor["crop_size"] == {"height": 64, "width": 64}
    # a second run does not overwrite, a non-PPMA checkpoint is refused; neither leaves a folder behind
    assert script.main(["--checkpoint", str(checkpoint), "--output", str(output)]) == 1
    torch.save({"model": {"blocks.0.attn.qkv.weight": torch.zeros(3, 3)}}, tmp_path / "other.pth")
    assert script.main(["--checkpoint", str(tmp_path / "other.pth"), "--output", str(tmp_path / "x")]) == 1
    assert not (tmp_path / "x").exists()


def test_backbone_drives_upernet_segmentation():
    """PpmaBackbone inside transformers' UperNetForSemanticSegmentation (the paper's ADE20K setup, in miniature):
    full-resolution logits, a finite loss, and gradients reaching the polyline decay parameters."""
    from transformers import UperNetConfig, UperNetForSemanticSegmentation

    tiny = {k: v for k, v in registry.get_architecture("ppma").tiny_config.items() if k != "num_labels"}
    backbone = registry.get_config("ppma", **tiny, out_features=["stage1", "stage2"])
    torch.manual_seed(0)
    model = UperNetForSemanticSegmentation(UperNetConfig(backbone_config=backbone, num_labels=3, hidden_size=16,
                                                         use_auxiliary_head=False))
    assert type(model.backbone).__name__ == "PpmaBackbone"
    out = model(torch.randn(2, 3, 32, 32), labels=torch.randint(0, 3, (2, 32, 32)))
    assert out.logits.shape == (2, 3, 32, 32) and torch.isfinite(out.loss)
    out.loss.backward()
    decay = model.backbone.ppma.stages[1].blocks[0].attn.path_embed
    assert decay.A_log.grad.abs().sum() > 0 and decay.dt_linear.weight.grad.abs().sum() > 0
