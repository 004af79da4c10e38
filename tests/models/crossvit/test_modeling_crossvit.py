"""CrossViT-specific behaviour: the registered variants, config validation, how each branch gets its input, the
packed outputs, attentions and the clear error for images that cannot feed both branches."""

import pytest
import torch
import torch.nn.functional as F
from huggingface_hub.errors import StrictDataclassClassValidationError

import hf_vision_zoo
from hf_vision_zoo import registry
from hf_vision_zoo.models.crossvit import CrossVitConfig, CrossVitForImageClassification, CrossVitModel
from hf_vision_zoo.models.crossvit.modeling_crossvit import pack_branches

TINY = registry.get_architecture("crossvit").tiny_config

# every official release (IBM/CrossViT weights-0.1), by the zoo/timm name
EXPECTED_VARIANTS = {
    "crossvit_tiny_240.in1k": "crossvit_tiny_224", "crossvit_small_240.in1k": "crossvit_small_224",
    "crossvit_base_240.in1k": "crossvit_base_224", "crossvit_9_240.in1k": "crossvit_9_224",
    "crossvit_15_240.in1k": "crossvit_15_224", "crossvit_18_240.in1k": "crossvit_18_224",
    "crossvit_9_dagger_240.in1k": "crossvit_9_dagger_224", "crossvit_15_dagger_240.in1k": "crossvit_15_dagger_224",
    "crossvit_18_dagger_240.in1k": "crossvit_18_dagger_224", "crossvit_15_dagger_408.in1k": "crossvit_15_dagger_384",
    "crossvit_18_dagger_408.in1k": "crossvit_18_dagger_384",
}


def test_every_official_variant_is_registered():
    assert set(hf_vision_zoo.list_models("crossvit_*")) == set(EXPECTED_VARIANTS)
    for name, official in EXPECTED_VARIANTS.items():
        variant = registry.get_variant(name)
        assert variant.checkpoint.endswith(f"/weights-0.1/{official}.pth") and variant.top1 > 70
        config = registry.get_config(name)
        assert config.multi_conv == ("dagger" in name)
        size = 408 if name.endswith("408.in1k") else 240
        assert config.image_size == [size, 384 if size == 408 else 224] and config.input_size == size
        assert variant.preprocessing["crop_size"] == {"height": size, "width": size}
        assert variant.preprocessing["size"] == {"shortest_edge": int(size * 256 / 224)}
    # parameter counts of the catalog (timm / official definitions)
    for name, params in [("crossvit_tiny_240.in1k", 7_014_800), ("crossvit_9_240.in1k", 8_553_296),
                         ("crossvit_9_dagger_240.in1k", 8_776_592)]:
        with torch.device("meta"):
            model = registry.create_model(name)
        assert sum(p.numel() for p in model.parameters()) == params, name


@pytest.mark.parametrize(("overrides", "message"), [
    (dict(patch_size=[6]), "at least two branches"),
    (dict(embed_dim=[16, 32, 8]), "embed_dim has 3 entries"),
    (dict(image_size=[35, 32]), "not a multiple of patch_size"),
    (dict(num_heads=[3, 2]), "not divisible by num_heads"),
    (dict(multi_conv=True), "patch sizes 12 and 16"),
    (dict(depth=[[1, 2]]), "depth\\[0\\] must list"),
    (dict(depth=[[0, 2, 0]]), "at least one block"),
    (dict(depth=[[3, 2, 0]]), "last branch must be the deepest"),
    (dict(mlp_ratio=[2]), "mlp_ratio"),
    (dict(drop_path_rate=1.0), "drop_path_rate"),
    (dict(image_size=[0, 32]), "positive ints"),
])
def test_bad_configs_are_rejected(overrides, message):
    with pytest.raises(StrictDataclassClassValidationError, match=message):
        CrossVitConfig(**{**TINY, **overrides})


def test_too_small_image_cannot_feed_both_branches():
    model = CrossVitForImageClassification(CrossVitConfig(**TINY)).eval()
    with pytest.raises(ValueError, match=r"7x9 px cannot feed every CrossViT branch.*8x8 px.*36x36"):
        model(torch.randn(1, 3, 7, 9))
    with torch.no_grad():  # one patch of the largest patch size is enough
        assert model(torch.randn(1, 3, 8, 8)).logits.shape == (1, 5)


def test_branch_inputs_are_bicubic_resizes_of_the_image():
    """Each branch sees the image bicubic-resized to its size (align_corners=False) only when the size differs: an
    image at branch 1's size gives branch 0 the official `F.interpolate(x, (36, 36), mode="bicubic")`."""
    torch.manual_seed(0)
    model = CrossVitModel(CrossVitConfig(**TINY)).eval()
    x = torch.randn(2, 3, 32, 32)
    embeddings = model.embeddings
    with torch.no_grad():
        got = embeddings(x)
        by_hand = embeddings.branches[0].patch_embed(F.interpolate(x, size=(36, 36), mode="bicubic"))[0]
        same_size = embeddings.branches[1].patch_embed(x)[0]
    torch.testing.assert_close(got[0][:, 1:] - embeddings.branches[0].position_embeddings[:, 1:], by_hand)
    torch.testing.assert_close(got[1][:, 1:] - embeddings.branches[1].position_embeddings[:, 1:], same_size)


def test_packed_outputs_hold_every_branch():
    torch.manual_seed(0)
    config = CrossVitConfig(**TINY)
    model = CrossVitModel(config).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 36, 36), output_hidden_states=True, output_attentions=True)
    small, large = out.branch_last_hidden_states
    assert small.shape == (2, 1 + 36, 16) and large.shape == (2, 1 + 16, 32)
    packed = out.last_hidden_state
    assert packed.shape == (2, 1 + 36 + 16, 48)
    torch.testing.assert_close(packed[:, 0], torch.cat([small[:, 0], large[:, 0]], -1))
    torch.testing.assert_close(out.pooler_output, packed[:, 0])
    torch.testing.assert_close(packed[:, 1:37, :16], small[:, 1:])
    torch.testing.assert_close(packed[:, 37:, 16:], large[:, 1:])
    assert not packed[:, 1:37, 16:].any() and not packed[:, 37:, :16].any()
    assert len(out.hidden_states) == 1 + config.num_layers and out.hidden_states[-1].shape == packed.shape
    # self-attention of the large-patch branch, and each branch's class-token cross-attention
    assert [a.shape for a in out.attentions] == [(2, 2, 17, 17)] * 2
    for cross in out.cross_attentions:
        assert [c.shape for c in cross] == [(2, 2, 1, 1 + 16), (2, 2, 1, 1 + 36)]
        for c in cross:
            torch.testing.assert_close(c.sum(-1), torch.ones_like(c.sum(-1)))
    assert pack_branches([small, large]).shape == packed.shape


def test_logits_are_the_mean_of_the_branch_heads_and_drop_path_follows_the_official_rule():
    torch.manual_seed(0)
    config = CrossVitConfig(**{**TINY, "drop_path_rate": 0.3})
    model = CrossVitForImageClassification(config).eval()
    x = torch.randn(2, 3, 36, 36)
    with torch.no_grad():
        tokens = model.crossvit(x).branch_last_hidden_states
        expected = (model.classifiers[0](tokens[0][:, 0]) + model.classifiers[1](tokens[1][:, 0])) / 2
        torch.testing.assert_close(model(x).logits, expected)
    # official: torch.linspace(0, rate, sum(last branch depth + cross depth)), sliced per multi-scale block
    ramp = torch.linspace(0, 0.3, 4).tolist()
    rates = config.drop_path_rates()
    assert rates[0] == pytest.approx(ramp[:2]) and rates[1] == pytest.approx(ramp[2:])
    block = model.crossvit.blocks[1]
    assert block.branches[1][1].drop_path1.drop_prob == pytest.approx(ramp[3])
    assert block.fusions[0].layers[0].drop_path.drop_prob == pytest.approx(ramp[3])
