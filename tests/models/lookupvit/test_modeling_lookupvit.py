"""Property tests of the zoo's LookupViT (paper 30; no official code, so no parity fixture): the two token sets'
shapes, the bidirectional exchange, attention maps, multi-resolution compressed grids, the FLOPs cost model measured
with `torch.utils.flop_counter` against the zoo ViT, and clear errors for inconsistent configs."""

import pytest
import torch
from huggingface_hub.errors import StrictDataclassClassValidationError
from torch.utils.flop_counter import FlopCounterMode

from hf_vision_zoo.models.lookupvit import LookupVitConfig, LookupVitForImageClassification, LookupVitModel
from hf_vision_zoo.models.lookupvit.modeling_lookupvit import LookupVitLayer, estimate_flops, estimate_vit_flops
from hf_vision_zoo.models.vit import VitConfig, VitModel

CONFIG_ERRORS = (ValueError, StrictDataclassClassValidationError)
TINY = dict(image_size=32, patch_size=4, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
            compressed_grid_size=[2, 4], num_labels=5)


def _perturbed(module, std=0.1, seed=0):
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=generator) * std)
    return module.eval()


def _count_flops(model, pixel_values) -> int:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(pixel_values)
    return counter.get_total_flops()


@pytest.mark.parametrize("reuse", [True, False])
def test_block_shapes_of_both_token_sets(reuse):
    config = LookupVitConfig(**TINY, attention_reuse=reuse)
    torch.manual_seed(0)
    layer = _perturbed(LookupVitLayer(config))
    compressed, lookup = torch.randn(3, 8, 32), torch.randn(3, 64, 32)
    new_compressed, new_lookup, (self_probs, gather, scatter) = layer(compressed, lookup, output_attentions=True)
    assert new_compressed.shape == (3, 8, 32) and new_lookup.shape == (3, 64, 32)
    assert self_probs.shape == (3, 2, 8, 8) and gather.shape == (3, 2, 8, 64) and scatter.shape == (3, 2, 64, 8)
    for probs in (self_probs, gather, scatter):  # every map is a softmax over its keys
        torch.testing.assert_close(probs.sum(-1), torch.ones_like(probs.sum(-1)), atol=1e-5, rtol=0)
        assert (probs >= 0).all()

    model = _perturbed(LookupVitModel(config))
    out = model(torch.randn(3, 3, 32, 32), output_hidden_states=True, output_attentions=True)
    assert out.last_hidden_state.shape == (3, 64, 32) and out.compressed_last_hidden_state.shape == (3, 8, 32)
    assert len(out.hidden_states) == len(out.compressed_hidden_states) == 3
    assert all(h.shape == (3, 64, 32) for h in out.hidden_states)
    assert all(h.shape == (3, 8, 32) for h in out.compressed_hidden_states)
    assert [a.shape for a in out.gather_attentions] == [(3, 2, 8, 64)] * 2
    assert [a.shape for a in out.scatter_attentions] == [(3, 2, 64, 8)] * 2
    torch.testing.assert_close(out.pooler_output, out.compressed_last_hidden_state.mean(1)
                               + out.last_hidden_state.mean(1))


def test_attention_reuse_scatter_is_the_transposed_gather_scores():
    """With attention_reuse the scatter map is softmax over the compressed tokens of the gather scores, transposed:
    both maps come from one score matrix S, normalised along its two axes."""
    config = LookupVitConfig(**TINY, attention_reuse=True)
    torch.manual_seed(0)
    gather = _perturbed(LookupVitLayer(config)).gather
    compressed, lookup = torch.randn(2, 8, 32), torch.randn(2, 64, 32)
    _, scores, probs = gather(compressed, lookup, output_attentions=True)
    torch.testing.assert_close(probs, scores.softmax(-1))
    layer = _perturbed(LookupVitLayer(config))
    _, _, (_, gather_probs, scatter_probs) = layer(compressed, lookup, output_attentions=True)
    _, scores, _ = layer.gather(compressed, lookup)
    torch.testing.assert_close(scatter_probs, scores.transpose(-2, -1).softmax(-1))
    torch.testing.assert_close(gather_probs, scores.softmax(-1))


@pytest.mark.parametrize("reuse", [True, False])
def test_information_flows_both_ways(reuse):
    """Gather: changing one lookup token changes every compressed token after the layer. Scatter: changing one
    compressed token changes every lookup token. Without the exchange, neither could happen (compressed tokens only
    self-attend, lookup tokens have no token mixing of their own)."""
    config = LookupVitConfig(**TINY, attention_reuse=reuse)
    torch.manual_seed(0)
    layer = _perturbed(LookupVitLayer(config))
    compressed, lookup = torch.randn(1, 8, 32), torch.randn(1, 64, 32)
    base_c, base_l, _ = layer(compressed, lookup)

    direction = torch.randn(32, generator=torch.Generator().manual_seed(3))  # not constant: LayerNorm removes that
    bumped = lookup.clone()
    bumped[0, 17] += direction
    new_c, new_l, _ = layer(compressed, bumped)
    assert ((new_c - base_c).abs().amax(-1) > 1e-4).all(), "a lookup token did not reach the compressed tokens"
    # a lookup token never reads another lookup token directly: the others change only through the compressed set
    others = [i for i in range(64) if i != 17]
    assert ((new_l - base_l)[0, others].abs().amax(-1) > 1e-6).all()

    bumped = compressed.clone()
    bumped[0, 3] += direction
    new_c, new_l, _ = layer(bumped, lookup)
    assert ((new_l - base_l).abs().amax(-1) > 1e-4).all(), "a compressed token did not reach the lookup tokens"

    # cut the scatter step's value path: the lookup tokens become blind to the compressed tokens
    with torch.no_grad():
        values = layer.scatter.v if reuse else layer.scatter.kv
        values.weight.zero_()
        values.bias.zero_()
    _, ref_l, _ = layer(compressed, lookup)
    _, blind_l, _ = layer(bumped, lookup)
    # (with reuse the scores still depend on the compressed tokens, but the values no longer do; without reuse keys
    # and values are both zero, so the read-out is constant)
    torch.testing.assert_close(blind_l, ref_l, atol=1e-6, rtol=0)


def test_whole_model_exchange_and_locality():
    """Through the whole model, a single-pixel-patch change moves every compressed token and every lookup token."""
    config = LookupVitConfig(**TINY)
    torch.manual_seed(0)
    model = _perturbed(LookupVitModel(config))
    x = torch.randn(1, 3, 32, 32)
    y = x.clone()
    y[..., :4, :4] += torch.randn(3, 4, 4)  # only patch 0
    a, b = model(x), model(y)
    assert ((a.compressed_last_hidden_state - b.compressed_last_hidden_state).abs().amax(-1) > 1e-4).all()
    assert ((a.last_hidden_state - b.last_hidden_state).abs().amax(-1) > 1e-5).all()


def test_multi_resolution_compressed_grids():
    """One set of weights runs with any compressed grid smaller than the patch grid (the paper's multi-resolution
    trade-off): outputs keep their shapes and the cost follows the cost model."""
    config = LookupVitConfig(**TINY)
    torch.manual_seed(0)
    model = _perturbed(LookupVitForImageClassification(config))
    model.set_attn_implementation("eager")
    x = torch.randn(2, 3, 32, 32)
    flops = {}
    for grid in (1, 2, (3, 5), 4):
        out = model(x, compressed_grid_size=grid, output_attentions=True)
        m = grid * grid if isinstance(grid, int) else grid[0] * grid[1]
        assert out.logits.shape == (2, 5) and out.attentions[0].shape[-1] == m
        flops[m] = _count_flops(lambda v, g=grid: model(v, compressed_grid_size=g), x[:1])
        assert flops[m] == estimate_flops(config, compressed_grid_size=grid, with_classifier=True)
    assert list(flops.values()) == sorted(flops.values()), "more compressed tokens must cost more"
    # the default grid equals an explicit one
    torch.testing.assert_close(model(x).logits, model(x, compressed_grid_size=(2, 4)).logits)


@pytest.mark.parametrize("reuse", [True, False])
@pytest.mark.parametrize("tiny", [True, pytest.param(False, marks=pytest.mark.slow)], ids=["narrow", "vit_b16"])
def test_flops_match_cost_model_and_halve_vit(reuse, tiny):
    """FLOPs measured by FlopCounterMode equal `estimate_flops` exactly (eager attention: CPU SDPA kernels are not
    counted by the flop counter), and the ViT of equal width/depth/patch at 224 measures `estimate_vit_flops`. At
    ViT-B/16 (D 768, 12 layers, 196 lookup tokens, default 5x5 grid, lookup MLP 0.5) the measured reduction is
    about 2x with attention reuse (the abstract's claim) and 1.74x without."""
    overrides = dict(image_size=224, patch_size=16)
    if tiny:  # a narrow version of the same geometry keeps this test fast; the B/16 case is what the paper claims
        overrides.update(hidden_size=64, num_hidden_layers=2, num_attention_heads=2)
    config = LookupVitConfig(**overrides, attention_reuse=reuse)
    vit_config = VitConfig(**overrides)
    with torch.device("meta"):  # weights are irrelevant to the count: skip initialising ViT-B
        lookup, vit = LookupVitModel(config), VitModel(vit_config)
    lookup, vit = lookup.to_empty(device="cpu").eval(), vit.to_empty(device="cpu").eval()
    lookup.set_attn_implementation("eager")
    vit.set_attn_implementation("eager")
    x = torch.randn(1, 3, 224, 224)
    measured, measured_vit = _count_flops(lookup, x), _count_flops(vit, x)
    assert measured == estimate_flops(config)
    assert measured_vit == estimate_vit_flops(vit_config)
    ratio = measured_vit / measured
    assert ratio == pytest.approx(estimate_vit_flops(vit_config) / estimate_flops(config), rel=1e-9)
    if not tiny:
        assert ratio == pytest.approx(2.0746, abs=1e-3) if reuse else ratio == pytest.approx(1.7432, abs=1e-3)
    assert ratio > 1.5  # self-attention over 25 tokens instead of 197 and a narrow lookup MLP always pay off here


def test_eager_matches_sdpa_without_reuse():
    """With attention_reuse=False both cross-attentions go through the attention backend; SDPA equals eager."""
    config = LookupVitConfig(**TINY, attention_reuse=False)
    torch.manual_seed(0)
    model = _perturbed(LookupVitModel(config))
    x = torch.randn(2, 3, 32, 32)
    model.set_attn_implementation("sdpa")
    sdpa = model(x).last_hidden_state
    model.set_attn_implementation("eager")
    torch.testing.assert_close(model(x).last_hidden_state, sdpa, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("overrides", "message"), [
    ({"compressed_grid_size": 9}, "smaller than the lookup"),
    ({"compressed_grid_size": [8, 8]}, "fewer than lookup tokens"),
    ({"compressed_grid_size": 0}, "positive"),
    ({"compressed_grid_size": [2, 2, 2]}, "int or [height, width]"),
    ({"lookup_mlp_ratio": 0}, "lookup_mlp_ratio"),
    ({"class_token": True}, "class_token"),
    ({"num_register_tokens": 2}, "num_register_tokens"),
    ({"pooling": "cls"}, "pooling"),
    ({"use_fc_norm": True}, "use_fc_norm"),
    ({"num_attention_heads": 3}, "divisible"),
])
def test_bad_configs_fail_clearly(overrides, message):
    with pytest.raises(CONFIG_ERRORS) as error:
        LookupVitConfig(**{**TINY, **overrides})
    assert message in str(error.value), str(error.value)


def test_bad_forward_arguments_fail_clearly():
    model = LookupVitModel(LookupVitConfig(**TINY)).eval()
    with pytest.raises(ValueError, match="smaller than the lookup"):
        model(torch.randn(1, 3, 32, 32), compressed_grid_size=8)
    # a small input whose patch grid is smaller than the compressed grid
    with pytest.raises(ValueError, match="compressed_grid_size 2x4"):
        model(torch.randn(1, 3, 12, 12), interpolate_pos_encoding=True)
    with pytest.raises(ValueError, match="interpolate_pos_encoding"):
        model(torch.randn(1, 3, 48, 48))
