"""S2AFormer properties (no official code exists, so these replace parity tests): the Strip Self-Attention shapes,
SSA equal to its formula written out by hand, its measured cost against standard multi-head self-attention, the full
model's cost against the zoo's Swin-T, backbone strides, config and input errors, and the common model checks run
again with spatial reduction switched on (the registry's tiny config keeps N x N attention maps)."""

import math

import pytest
import torch
import torch.nn.functional as F
from huggingface_hub.errors import StrictDataclassClassValidationError
from torch.utils.flop_counter import FlopCounterMode

import hf_vision_zoo
from common.zoo_model_tester import BACKBONE, FEATURE_EXTRACTION, IMAGE_CLASSIFICATION, ZooModelTester
from hf_vision_zoo.layers import SelfAttention
from hf_vision_zoo.models.s2aformer import (
    S2AFormerBackbone,
    S2AFormerConfig,
    S2AFormerForImageClassification,
    S2AFormerModel,
)
from hf_vision_zoo.models.s2aformer.modeling_s2aformer import S2AFormerStripSelfAttention

CONFIG_ERRORS = (ValueError, StrictDataclassClassValidationError)
TINY = dict(image_size=64, stem_channels=8, embed_dims=[16, 32, 48, 64], depths=[1, 1, 1, 1], num_heads=[1, 2, 2, 4],
            qk_compression_ratios=[2, 2, 4, 2], num_labels=5, drop_path_rate=0.0)
REDUCED = dict(sr_ratios=[4, 2, 2, 1])  # every stage but the last attends to a reduced K/V grid


def _config(**overrides) -> S2AFormerConfig:
    return S2AFormerConfig(**{**TINY, **REDUCED, **overrides})


def _perturb(module: torch.nn.Module, std: float = 0.1, seed: int = 0) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=generator) * std)


def _ssa(dim=32, heads=2, sr=2, qk=2, attn="eager", **config_overrides) -> S2AFormerStripSelfAttention:
    config = _config(**config_overrides)
    config._attn_implementation = attn
    torch.manual_seed(0)
    module = S2AFormerStripSelfAttention(config, dim, heads, sr, qk).eval()
    _perturb(module)
    return module


# ---------------------------------------------------------------------------------------------------------------
# Strip Self-Attention
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("dim", "heads", "sr", "qk", "size"), [
    (32, 2, 2, 2, (8, 12)), (64, 4, 4, 4, (16, 16)), (48, 3, 1, 2, (6, 10)), (16, 1, 8, 16, (16, 8)),
])
def test_ssa_shapes(dim, heads, sr, qk, size):
    """Q keeps the full token grid, K/V the reduced strip grid (N / r^2 tokens); Q and K carry d' = C / ratio
    channels, V the full C; the attention map is N x N' per head and the output keeps the input's shape."""
    module = _ssa(dim, heads, sr, qk)
    height, width = size
    x = torch.randn(2, height, width, dim)
    query, key, value, grid = module.project(x)
    tokens, reduced = height * width, (height // sr) * (width // sr)
    assert grid == (height // sr, width // sr)
    assert tuple(query.shape) == (2, heads, tokens, dim // qk // heads)
    assert tuple(key.shape) == (2, heads, reduced, dim // qk // heads)
    assert tuple(value.shape) == (2, heads, reduced, dim // heads)
    assert module.query.out_features == dim // qk and module.key_value.out_features == dim // qk + dim
    out, probs = module(x, output_attentions=True)
    assert tuple(out.shape) == tuple(x.shape)
    assert tuple(probs.shape) == (2, heads, tokens, reduced)
    torch.testing.assert_close(probs.sum(-1), torch.ones(2, heads, tokens), atol=1e-5, rtol=0)


def _reference_ssa(module: S2AFormerStripSelfAttention, x: torch.Tensor) -> torch.Tensor:
    """SSA(x) = Proj(concat_h softmax(Q_h K_h^T / sqrt(d'_h)) V_h) with Q = x W_q, [K, V] = SR(x) [W_k, W_v],
    SR = LayerNorm(depth-wise r x r, stride-r conv) (identity for r = 1), written without the module's code paths
    (the depth-wise conv as a sum over each r x r patch)."""
    batch, height, width, dim = x.shape
    heads, r, d_qk = module.num_heads, module.sr_ratio, module.qk_dim
    q = x.reshape(batch, -1, dim) @ module.query.weight.T + module.query.bias
    if r > 1:
        pad_h, pad_w = -height % r, -width % r
        padded = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
        gh, gw = (height + pad_h) // r, (width + pad_w) // r
        patches = padded.reshape(batch, gh, r, gw, r, dim)
        kernel = module.reduction.weight[:, 0]  # (C, r, r)
        source = torch.einsum("bhiwjc,cij->bhwc", patches, kernel) + module.reduction.bias
        source = source.reshape(batch, gh * gw, dim)
        mean = source.mean(-1, keepdim=True)
        var = source.var(-1, unbiased=False, keepdim=True)
        norm = module.reduction_norm
        source = (source - mean) / torch.sqrt(var + norm.eps) * norm.weight + norm.bias
    else:
        source = x.reshape(batch, -1, dim)
    kv = source @ module.key_value.weight.T + module.key_value.bias
    k, v = kv[..., :d_qk], kv[..., d_qk:]
    outs = []
    for h in range(heads):
        qh = q[..., h * d_qk // heads:(h + 1) * d_qk // heads]
        kh = k[..., h * d_qk // heads:(h + 1) * d_qk // heads]
        vh = v[..., h * dim // heads:(h + 1) * dim // heads]
        scores = qh @ kh.transpose(1, 2) / math.sqrt(d_qk // heads)
        outs.append(torch.softmax(scores, dim=-1) @ vh)
    out = torch.cat(outs, dim=-1) @ module.proj.weight.T + module.proj.bias
    return out.reshape(batch, height, width, dim)


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
@pytest.mark.parametrize(("dim", "heads", "sr", "qk", "size"), [
    (32, 2, 2, 2, (8, 12)), (64, 4, 4, 4, (16, 16)), (48, 3, 1, 2, (6, 10)), (32, 2, 4, 1, (9, 14)),
])
def test_ssa_equals_reference_formula(attn, dim, heads, sr, qk, size):
    """Random weights perturbed with std 0.1; (9, 14) with r = 4 also covers the zero-padding before reduction."""
    module = _ssa(dim, heads, sr, qk, attn=attn)
    x = torch.randn(2, *size, dim, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        out, _ = module(x)
        expected = _reference_ssa(module, x)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def _flops(module, *args) -> int:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(*args)
    return counter.get_total_flops()


def test_ssa_flops_vs_multi_head_self_attention():
    """Measured with FlopCounterMode (eager attention, so every matmul is seen): SSA costs exactly its analytic
    count, and is cheaper than standard MHSA of the same width, by a factor that grows with the token count."""
    dim, heads, sr, qk = 64, 2, 8, 4
    config = _config()
    config._attn_implementation = "eager"
    ssa = S2AFormerStripSelfAttention(config, dim, heads, sr, qk).eval()
    mhsa = SelfAttention(config, dim, heads).eval()
    d_qk, ratios = dim // qk, []
    for side in (16, 32, 56, 64):
        n, n_red = side * side, (side // sr) ** 2
        x = torch.randn(1, side, side, dim)
        measured_ssa = _flops(ssa, x)
        measured_mhsa = _flops(mhsa, x.reshape(1, n, dim))
        expected_ssa = (2 * n * dim * d_qk  # Q projection to d'
                        + 2 * n_red * dim * sr * sr  # depth-wise r x r reduction conv
                        + 2 * n_red * dim * (d_qk + dim)  # K (d') and V (C) from the reduced tokens
                        + 2 * n * n_red * d_qk + 2 * n * n_red * dim  # Q K^T and A V
                        + 2 * n * dim * dim)  # output projection
        expected_mhsa = 2 * n * dim * 3 * dim + 2 * 2 * n * n * dim + 2 * n * dim * dim
        assert measured_ssa == expected_ssa, (side, measured_ssa, expected_ssa)
        assert measured_mhsa == expected_mhsa, (side, measured_mhsa, expected_mhsa)
        assert measured_ssa < measured_mhsa
        ratios.append(measured_mhsa / measured_ssa)
    assert all(a < b for a, b in zip(ratios, ratios[1:])), f"MHSA/SSA cost ratios should grow: {ratios}"
    assert ratios[-1] > 10, ratios  # 64x64 tokens, r = 8: the quadratic term dominates MHSA


@pytest.mark.slow  # two full-size models at 224 px (~15 s)
def test_full_model_flops_vs_swin_tiny():
    """The default reconstruction (25.7M parameters) against the zoo's Swin-T (28.3M) at 224 px, eager attention:
    fewer FLOPs in total, and well under half of Swin's FLOPs in the attention modules, although it has 22
    attention blocks to Swin's 12."""
    s2a = S2AFormerForImageClassification(S2AFormerConfig(num_labels=1000)).eval()
    swin = hf_vision_zoo.create_model("swin_tiny_patch4_window7_224.ms_in1k").eval()
    params = {name: sum(p.numel() for p in m.parameters()) for name, m in (("s2a", s2a), ("swin", swin))}
    assert 0.85 < params["s2a"] / params["swin"] < 1.0, params
    x = torch.randn(1, 3, 224, 224)
    totals, attention = {}, {}
    for name, model in (("s2a", s2a), ("swin", swin)):
        model.set_attn_implementation("eager")
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(x)
        counts = counter.get_flop_counts()
        totals[name] = counter.get_total_flops()
        attention[name] = sum(sum(v.values()) for k, v in counts.items() if k.endswith(".attn"))
    assert totals["s2a"] < totals["swin"], totals
    assert attention["s2a"] < 0.5 * attention["swin"], attention


# ---------------------------------------------------------------------------------------------------------------
# whole model
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(64, 64), (96, 128), (70, 45)])
def test_backbone_strides(size):
    backbone = S2AFormerBackbone(_config(out_features=["stem", "stage1", "stage2", "stage3", "stage4"])).eval()
    assert backbone.channels == [8, 16, 32, 48, 64]
    with torch.no_grad():
        maps = backbone(torch.randn(1, 3, *size)).feature_maps
    for fmap, stride in zip(maps, (2, 4, 8, 16, 32)):
        assert tuple(fmap.shape[2:]) == (math.ceil(size[0] / stride), math.ceil(size[1] / stride)), (stride, fmap.shape)
    assert backbone.config.stage_strides() == [4, 8, 16, 32]


def test_block_follows_the_hpb_equations():
    """f1 = DWConv(x) + x; f2 = SSA(LN(f1)) + f1; f3 = LIM(LN(f2)) + f2; out = MLP(LN(f3)) + f3."""
    model = S2AFormerModel(_config()).eval()
    _perturb(model)
    block = model.stages[1].blocks[0]
    x = torch.randn(2, 8, 8, 32)
    with torch.no_grad():
        f1 = x + block.local_conv(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        f2 = f1 + block.attn(block.norm1(f1))[0]
        f3 = f2 + block.lim.pwconv(F.gelu(block.lim.dwconv(block.norm2(f2).permute(0, 3, 1, 2)).permute(0, 2, 3, 1)))
        expected = f3 + block.mlp(block.norm3(f3))
        torch.testing.assert_close(block(x)[0], expected, atol=1e-5, rtol=1e-5)
    without = S2AFormerModel(_config(use_lim=False))
    assert without.stages[1].blocks[0].lim is None
    assert not any(".lim." in name for name, _ in without.named_parameters())


def test_bad_configs_raise_clear_errors():
    with pytest.raises(CONFIG_ERRORS, match=r"sr_ratios\[0\]=3 does not divide the 16x16 token grid"):
        _config(sr_ratios=[3, 2, 2, 1])
    with pytest.raises(CONFIG_ERRORS, match=r"sr_ratios\[2\]=8 does not divide"):
        _config(image_size=224, sr_ratios=[8, 4, 8, 1])
    with pytest.raises(CONFIG_ERRORS, match=r"compressed Q/K width .* = 4 is not divisible by num_heads\[0\]=8"):
        _config(num_heads=[8, 2, 2, 4], qk_compression_ratios=[4, 2, 4, 2])
    with pytest.raises(CONFIG_ERRORS, match=r"qk_compression_ratios\[1\]=3 does not divide embed_dims\[1\]=32"):
        _config(qk_compression_ratios=[2, 3, 4, 2])
    with pytest.raises(CONFIG_ERRORS, match=r"num_heads\[0\]=3 does not divide embed_dims\[0\]=16"):
        _config(num_heads=[3, 2, 2, 4])
    with pytest.raises(CONFIG_ERRORS, match="one value per stage"):
        _config(depths=[1, 1, 1])
    with pytest.raises(CONFIG_ERRORS, match="local_kernel_size must be a positive odd int"):
        _config(local_kernel_size=4)
    with pytest.raises(CONFIG_ERRORS, match="smaller than the network's total stride 32"):
        _config(image_size=16)
    with pytest.raises(CONFIG_ERRORS, match="drop_path_rate"):
        _config(drop_path_rate=1.0)


def test_unsupported_input_sizes_raise_clear_errors():
    model = S2AFormerForImageClassification(_config()).eval()
    for size in ((31, 64), (64, 20), (1, 1)):
        with pytest.raises(ValueError, match=rf"{size[0]}x{size[1]} is smaller than the network's total stride 32"):
            model(torch.randn(1, 3, *size))
    with torch.no_grad():  # the smallest accepted input, and sizes the reduction ratios do not divide
        for size in ((32, 32), (33, 47)):
            assert model(torch.randn(1, 3, *size)).logits.shape == (1, 5)


# ---------------------------------------------------------------------------------------------------------------
# the common checks again, with K/V reduction on (non-square N x N' attention maps)
# ---------------------------------------------------------------------------------------------------------------


class ReducedTester(ZooModelTester):
    def config(self, **overrides):
        return super().config(**{**REDUCED, **overrides})


TASKS = [FEATURE_EXTRACTION, IMAGE_CLASSIFICATION, BACKBONE]


@pytest.mark.slow  # ~15-40 s for the three tasks
@pytest.mark.parametrize("task", TASKS)
def test_reduced_eager_matches_sdpa_and_save_load(task, tmp_dir):
    tester = ReducedTester("s2aformer")
    tester.check_eager_matches_sdpa(task, tmp_dir / "attn", atol=1e-5)
    tester.check_save_load(task, tmp_dir / "save")


@pytest.mark.slow  # ~60 s for the three tasks
@pytest.mark.parametrize("task", TASKS)
def test_reduced_model_checks(task):
    tester = ReducedTester("s2aformer")
    tester.check_batching_equivalence(task, atol=1e-5)
    tester.check_meta_init_completeness(task)
    tester.check_every_parameter_gets_a_gradient(task)
    tester.check_other_input_sizes(task)
    tester.check_gradient_checkpointing(task, use_reentrant=False)


def test_reduced_attention_maps():
    """One map per stage of shape (B, heads, N, N / r^2), rows summing to one, also from the SDPA model."""
    tester = ReducedTester("s2aformer")
    config = tester.config()
    model = tester.model(IMAGE_CLASSIFICATION, config=config)
    with torch.no_grad():
        plain = model(tester.pixel_values())
        out = model(tester.pixel_values(), output_attentions=True)
    torch.testing.assert_close(out.logits, plain.logits, atol=1e-5, rtol=1e-5)
    grids = config.stage_resolutions()
    assert len(out.attentions) == 4
    for probs, (h, w), heads, r in zip(out.attentions, grids, config.num_heads, config.sr_ratios):
        assert tuple(probs.shape) == (2, heads, h * w, (h // r) * (w // r))
        torch.testing.assert_close(probs.sum(-1), torch.ones(probs.shape[:-1]), atol=1e-5, rtol=0)
