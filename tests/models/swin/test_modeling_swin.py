"""Swin-specific behaviour beyond the common tester: the official window/shift rule, published sizes, config errors,
padding of other input sizes, and the outputs' conventions."""

import json
from pathlib import Path

import pytest
import torch
from huggingface_hub.errors import StrictDataclassClassValidationError

import hf_vision_zoo
from hf_vision_zoo import SwinConfig, SwinForImageClassification

RECIPE = Path(__file__).parents[2] / "fixtures" / "swin_official" / "recipe.json"

# parameter counts of the official models (Swin-T 28,288,354 as in the catalog; the others counted the same way)
OFFICIAL_PARAMS_M = {"swin_tiny_patch4_window7_224.ms_in1k": 28.3, "swin_small_patch4_window7_224.ms_in1k": 49.6,
                     "swin_base_patch4_window7_224.ms_in1k": 87.8, "swin_large_patch4_window7_224.ms_in22k_ft_in1k": 196.5}


@pytest.mark.parametrize("name", sorted(OFFICIAL_PARAMS_M))
def test_published_sizes(name):
    with torch.device("meta"):
        model = hf_vision_zoo.create_model(name)
    assert sum(p.numel() for p in model.parameters()) / 1e6 == pytest.approx(OFFICIAL_PARAMS_M[name], abs=0.05)


def test_window_and_shift_follow_the_official_rule():
    """Each block's (window, shift) equals what the official code built for the fixture configs (recipe.json)."""
    recipe = json.loads(RECIPE.read_text())["fixtures"]
    checked = 0
    for entry in recipe.values():
        kwargs = entry["constructor_kwargs"]
        config = SwinConfig(image_size=kwargs["img_size"], patch_size=kwargs["patch_size"],
                            embed_dim=kwargs["embed_dim"], depths=kwargs["depths"], num_heads=kwargs["num_heads"],
                            window_size=kwargs["window_size"], use_absolute_embeddings=kwargs["ape"])
        model = hf_vision_zoo.SwinModel(config)
        ours = [[(b.window_size[0], b.shift_size) for b in stage.blocks] for stage in model.stages]
        official = [[(blk["window_size"], blk["shift_size"]) for blk in stage["blocks"]]
                    for stage in entry["official_stages"]]
        assert ours == official
        checked += 1
    assert checked == 4


def test_swin_tiny_stage_windows():
    config = hf_vision_zoo.get_config("swin_tiny_patch4_window7_224.ms_in1k")
    with torch.device("meta"):
        model = hf_vision_zoo.SwinModel(config)
    shifts = [[b.shift_size for b in stage.blocks] for stage in model.stages]
    assert shifts == [[0, 3], [0, 3], [0, 3, 0, 3, 0, 3], [0, 0]]  # 7x7 last stage: one window, no shift


@pytest.mark.parametrize("kwargs, message", [
    (dict(embed_dim=96, num_heads=[5, 6, 12, 24]), "does not divide"),
    (dict(depths=[2, 2], num_heads=[3]), "one per stage"),
    (dict(image_size=32, window_size=12), "larger than the 8x8 patch grid"),
    (dict(image_size=2, patch_size=4), "smaller than one patch"),
    (dict(drop_path_rate=1.0), "drop_path_rate"),
    (dict(image_size=[32, 32, 3]), "image_size"),
])
def test_inconsistent_config_is_rejected_clearly(kwargs, message):
    with pytest.raises(StrictDataclassClassValidationError, match=message):
        SwinConfig(**kwargs)


def test_wrong_field_type_is_rejected():
    with pytest.raises(Exception, match="window_size"):
        SwinConfig(window_size="7")


def _tiny(**overrides):
    torch.manual_seed(0)
    kwargs = dict(image_size=32, patch_size=2, embed_dim=16, depths=[2, 2], num_heads=[2, 4], window_size=4,
                  num_labels=3, drop_path_rate=0.0)
    return SwinForImageClassification(SwinConfig(**{**kwargs, **overrides})).eval()


def test_padding_is_invisible_for_sizes_that_need_none():
    """An input of another size that is a multiple of patch x window x merges is not padded: same result as a model
    configured for that size (the window/shift rule of the configured size is kept)."""
    model = _tiny()
    other = SwinForImageClassification(SwinConfig(**{**model.config.to_dict(), "image_size": 64})).eval()
    other.load_state_dict(model.state_dict())
    pixels = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(pixels).logits, other(pixels).logits, atol=1e-6, rtol=0)


def test_odd_sizes_are_padded_and_stay_finite():
    model = _tiny()
    for size in ((33, 47), (5, 9), (2, 2)):
        with torch.no_grad():
            out = model(torch.randn(1, 3, *size))
        assert out.logits.shape == (1, 3) and torch.isfinite(out.logits).all()


def test_smaller_than_a_patch_is_a_clear_error():
    with pytest.raises(ValueError, match="smaller than one patch"):
        _tiny()(torch.randn(1, 3, 1, 8))


def test_absolute_position_embedding_needs_interpolation_flag_for_other_sizes():
    model = _tiny(use_absolute_embeddings=True)
    with pytest.raises(ValueError, match="interpolate_pos_encoding=True"):
        model(torch.randn(1, 3, 48, 40))
    with torch.no_grad():
        out = model(torch.randn(1, 3, 48, 40), interpolate_pos_encoding=True)
        same = model(torch.full((1, 3, 32, 32), 0.5), interpolate_pos_encoding=True).logits
        plain = model(torch.full((1, 3, 32, 32), 0.5)).logits
    assert torch.isfinite(out.logits).all()
    torch.testing.assert_close(same, plain)  # at the trained size interpolation is the identity


def test_hidden_states_are_stage_outputs_before_merging():
    model = _tiny()
    with torch.no_grad():
        out = model.swin(torch.randn(2, 3, 32, 32), output_hidden_states=True, output_attentions=True)
    assert [tuple(h.shape) for h in out.reshaped_hidden_states] == [(2, 16, 16, 16), (2, 16, 16, 16),
                                                                    (2, 32, 8, 8)]
    assert [tuple(h.shape) for h in out.hidden_states] == [(2, 256, 16), (2, 256, 16), (2, 64, 32)]
    # last stage: the final LayerNorm of its features is last_hidden_state
    torch.testing.assert_close(model.swin.layernorm(out.hidden_states[-1]), out.last_hidden_state)
    # attentions: one per stage, (batch * windows, heads, N, N), rows sum to 1
    assert [tuple(a.shape) for a in out.attentions] == [(2 * 16, 2, 16, 16), (2 * 4, 4, 16, 16)]
    torch.testing.assert_close(out.attentions[0].sum(-1), torch.ones(32, 2, 16))


def test_dropout_and_drop_path_are_active_only_in_training():
    model = _tiny(drop_path_rate=0.5, hidden_dropout_prob=0.2)
    pixels = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        eval_a, eval_b = model(pixels).logits, model(pixels).logits
        model.train()
        train_a, train_b = model(pixels).logits, model(pixels).logits
    torch.testing.assert_close(eval_a, eval_b)
    assert not torch.allclose(train_a, train_b)


def test_load_backbone_from_a_local_folder(tmp_path):
    """transformers 5.23's AutoBackbone.from_pretrained fails on local folders; the zoo's load_backbone does not."""
    model = _tiny()
    model.save_pretrained(tmp_path)
    backbone = hf_vision_zoo.load_backbone(str(tmp_path), out_features=["stem", "stage2"])
    assert isinstance(backbone, hf_vision_zoo.SwinBackbone)
    torch.testing.assert_close(backbone.swin.embeddings.patch_embed.proj.weight,
                               model.swin.embeddings.patch_embed.proj.weight)
    with torch.no_grad():
        maps = backbone(torch.randn(2, 3, 32, 32)).feature_maps
    assert [tuple(m.shape) for m in maps] == [(2, 16, 16, 16), (2, 32, 8, 8)]
    with pytest.raises(ValueError, match="out_features"):
        hf_vision_zoo.load_backbone(str(tmp_path), out_features=["stage9"])
