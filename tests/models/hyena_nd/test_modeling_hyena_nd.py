"""Hyena N-D model: the paper's variants (parameter counts of the official code), the mixer patterns and directional
rule, other input sizes, bad configs and inputs, and the per-parameter optimiser hints honoured by the trainer's
`param_groups`."""

import pytest
import torch
from huggingface_hub.errors import StrictDataclassClassValidationError
from torch import nn

from hf_vision_zoo import registry
from hf_vision_zoo.layers import TransformerBlock
from hf_vision_zoo.models.hyena_nd import HyenaNdBlock, HyenaNdConfig, HyenaNdForImageClassification
from hf_vision_zoo.training.optim import optim_hints, param_groups

TINY = registry.get_architecture("hyena_nd").tiny_config


def _count(name: str, **overrides) -> int:
    with torch.device("meta"):
        model = registry.create_model(name, **overrides)
    return sum(p.numel() for p in model.parameters())


def test_parameter_counts_match_the_official_code():
    """The catalog's counts of the official `deit_tiny_patch16_224` at 1000 classes."""
    assert _count("hyena_nd_deit_tiny_patch16_224", num_labels=1000) == 6_042_400
    assert _count("hyena_nd_hybrid_deit_tiny_patch16_224", num_labels=1000) == 5_906_830
    # the attention baseline of the same code (no class token)
    assert _count("hyena_nd_deit_tiny_patch16_224", num_labels=1000, mixer_pattern="all_attention") == 5_717_032
    # the README's CelebA recipe: 40 binary attributes
    config = registry.get_config("hyena_nd_deit_tiny_patch16_224")
    assert config.num_labels == 40 and config.problem_type == "multi_label_classification"
    assert _count("hyena_nd_deit_tiny_patch16_224") == 6_042_400 - 960 * 193


def test_mixer_patterns_and_directions_follow_the_official_block_rule():
    hybrid = registry.get_config("hyena_nd_hybrid_deit_tiny_patch16_224")
    assert hybrid.block_mixers() == ["hyena"] * 7 + ["attention"] * 5  # blocks 0..depth//2 are Hyena
    assert hybrid.block_directions()[:7] == ["seq", "standard"] * 3 + ["seq"]
    assert HyenaNdConfig(num_hidden_layers=4, mixer_pattern="attention_then_hyena").block_mixers() == [
        "attention", "attention", "attention", "hyena"]
    assert HyenaNdConfig(num_hidden_layers=4, mixer_pattern="alternating").block_mixers() == [
        "hyena", "attention", "hyena", "attention"]
    assert HyenaNdConfig(directional_mode="standard").block_directions() == ["standard"] * 12
    # the official --method names are accepted and stored canonically
    assert HyenaNdConfig(mixer_pattern="hyena2dattn").mixer_pattern == "hyena_then_attention"
    assert HyenaNdConfig(mixer_pattern="onebyone").mixer_pattern == "alternating"
    model = HyenaNdForImageClassification(HyenaNdConfig(**{**TINY, "num_hidden_layers": 2,
                                                           "mixer_pattern": "hyena_then_attention"}))
    kinds = [type(b) for b in model.hyena_nd.blocks]
    assert kinds == [HyenaNdBlock, HyenaNdBlock]  # depth 2: blocks 0 and 1 are <= depth // 2
    assert [b.mixer.directional_mode for b in model.hyena_nd.blocks] == ["seq", "standard"]
    model = HyenaNdForImageClassification(HyenaNdConfig(**{**TINY, "mixer_pattern": "all_attention"}))
    assert all(type(b) is TransformerBlock for b in model.hyena_nd.blocks)


@pytest.mark.parametrize(("overrides", "message"), [
    ({"mixer_pattern": "hyena_everywhere"}, "mixer_pattern"),
    ({"directional_mode": "4dir"}, "directional_mode"),
    ({"use_cls_token": True}, "use_cls_token"),
    ({"hyena_order": 1}, "hyena_order"),
    ({"filter_emb_dim": 4}, "filter_emb_dim"),
    ({"num_attention_heads": 5}, "divisible"),
    ({"global_pool": "max"}, "global_pool"),
    ({"image_size": 8, "patch_size": 16}, "smaller than one patch"),
    ({"image_size": 40, "patch_size": 16}, "multiple of patch_size"),
    ({"short_filter_size": 2}, "short_filter_size"),
    ({"decay_target": 1.5}, "decay_target"),
    ({"filter_lr": -1.0}, "filter_lr"),
    ({"drop_path_rate": 1.0}, "drop_path_rate"),
])
def test_bad_configs_fail_clearly(overrides, message):
    with pytest.raises(StrictDataclassClassValidationError, match=message):
        HyenaNdConfig(**overrides)


def test_class_token_with_attention_only_and_average_pooling():
    torch.manual_seed(0)
    deit = HyenaNdForImageClassification(HyenaNdConfig(**{**TINY, "mixer_pattern": "all_attention",
                                                          "use_cls_token": True})).eval()
    assert deit.hyena_nd.embeddings.cls_token is not None
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        out = deit.hyena_nd(x)
    assert out.last_hidden_state.shape == (2, 65, 32)
    torch.testing.assert_close(out.pooler_output, out.last_hidden_state[:, 0])
    torch.manual_seed(0)
    avg = HyenaNdForImageClassification(HyenaNdConfig(**{**TINY, "global_pool": "avg"})).eval()
    with torch.no_grad():
        out = avg.hyena_nd(x)
    torch.testing.assert_close(out.pooler_output, out.last_hidden_state.mean(1))


def test_other_input_sizes_need_interpolate_pos_encoding():
    torch.manual_seed(0)
    model = HyenaNdForImageClassification(HyenaNdConfig(**TINY)).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        native = model(x).logits
        # at the native size, interpolation changes nothing (stored filters and positions are used as they are)
        torch.testing.assert_close(model(x, interpolate_pos_encoding=True).logits, native, atol=0, rtol=0)
        with pytest.raises(ValueError, match="interpolate_pos_encoding"):
            model(torch.randn(1, 3, 48, 40))
        out = model(torch.randn(1, 3, 48, 40), interpolate_pos_encoding=True, output_hidden_states=True)
    assert out.logits.shape == (1, 5) and out.hidden_states[0].shape == (1, 12 * 10, 32)
    with pytest.raises(ValueError, match="channels"):
        model(torch.randn(1, 1, 32, 32))


def test_optim_hints_reach_the_optimizer_param_groups():
    torch.manual_seed(0)
    model = HyenaNdForImageClassification(HyenaNdConfig(**{**TINY, "mixer_pattern": "all_hyena"}))
    hints = model.optim_hints()
    names = dict(model.named_parameters())
    assert set(hints) <= set(names) and len(hints) == 2 * 9  # per Hyena block: 7 MLP tensors, freq, z
    groups = param_groups(model, lr=5e-4, weight_decay=0.05)
    group_of = {name: g for g in groups for name in g["param_names"]}
    assert sum(len(g["params"]) for g in groups) == len(names)
    for block in (0, 1):
        prefix = f"hyena_nd.blocks.{block}.mixer."
        z = group_of[prefix + "filter_fn.pos_emb.z"]
        assert z["lr"] == pytest.approx(1e-5) and z["weight_decay"] == 0.0
        for name in ("filter_fn.mlp.0.weight", "filter_fn.mlp.3.weight", "filter_fn.sin.freq"):
            assert group_of[prefix + name]["lr"] == pytest.approx(1e-3), name
            assert group_of[prefix + name]["weight_decay"] == 0.0, name
        # unhinted parameters keep the base settings
        assert group_of[prefix + "in_proj.weight"]["lr"] == pytest.approx(5e-4)
        assert group_of[prefix + "in_proj.weight"]["weight_decay"] == 0.05
        assert group_of[prefix + "filter_fn.bias"]["weight_decay"] == 0.0  # 1-D: the usual no-decay rule
    # layer decay still scales a hinted learning rate
    decayed = param_groups(model, lr=5e-4, weight_decay=0.05, layer_decay=0.5)
    group_of = {name: g for g in decayed for name in g["param_names"]}
    assert group_of["hyena_nd.blocks.0.mixer.filter_fn.mlp.0.weight"]["lr"] == pytest.approx(1e-3 * 0.5**2)
    # an AdamW step with these groups leaves a zero-lr parameter untouched and moves the others
    optimizer = torch.optim.AdamW(param_groups(model, lr=5e-4, weight_decay=0.05))
    for group in optimizer.param_groups:
        if "pos_emb.z" in group["param_names"][0]:
            group["lr"] = 0.0
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    model(torch.randn(2, 3, 32, 32), labels=torch.tensor([0, 1])).loss.backward()
    optimizer.step()
    assert torch.equal(before["hyena_nd.blocks.0.mixer.filter_fn.pos_emb.z"],
                       model.hyena_nd.blocks[0].mixer.filter_fn.pos_emb.z)
    assert not torch.equal(before["hyena_nd.blocks.0.mixer.filter_fn.mlp.0.weight"],
                           model.hyena_nd.blocks[0].mixer.filter_fn.mlp[0].weight)
    # switched off: the official training script's behaviour (one lr / weight decay rule for everything)
    off = HyenaNdForImageClassification(HyenaNdConfig(**{**TINY, "use_optim_hints": False}))
    assert off.optim_hints() == {}
    assert {g["lr"] for g in param_groups(off, lr=5e-4, weight_decay=0.05)} == {5e-4}


def test_param_groups_honour_the_official_optim_attribute_convention():
    """Any model whose parameters carry the official `_optim` dict (Hyena's `OptimModule.register`) is honoured."""
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2))
    model[0].weight._optim = {"lr": 1e-3, "weight_decay": 0.0}
    groups = param_groups(model, lr=1e-2, weight_decay=0.1)
    group_of = {name: g for g in groups for name in g["param_names"]}
    assert group_of["0.weight"]["lr"] == 1e-3 and group_of["0.weight"]["weight_decay"] == 0.0
    assert group_of["1.weight"]["lr"] == 1e-2 and group_of["1.weight"]["weight_decay"] == 0.1
    assert len(groups) == 3  # hinted, decayed, not decayed (biases)
    assert optim_hints(nn.Linear(2, 2)) == {}  # no hints: the groups are exactly the old ones
    model[1].weight._optim = {"momentum": 0.5}
    with pytest.raises(ValueError, match="unknown keys"):
        param_groups(model, lr=1e-2, weight_decay=0.1)
