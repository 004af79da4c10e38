"""GMM-ViT properties: the common tester's checks on the GMM and ELM configs (the registered tiny config is the
unmasked path, because the tester requires SDPA), the masks' properties (all-ones mask = plain ViT, GMM depends on
the relative offset only, prefix tokens untouched), SDPA honesty, and clear errors for bad configs and inputs."""

from unittest import mock

import pytest
import torch
from huggingface_hub.errors import StrictDataclassClassValidationError
from common.zoo_model_tester import IMAGE_CLASSIFICATION, ZooModelTester

from hf_vision_zoo.layers.gaussian_mixture_mask import (
    SIGMA_EPS,
    ElementwiseLearnableMask,
    GaussianMixtureMask,
    MaskedSelfAttention,
    gaussian_distance_kernel,
)
from hf_vision_zoo.models.gmm_vit import GmmVitConfig, GmmVitForImageClassification, GmmVitModel
from hf_vision_zoo.models.vit import VitConfig, VitForImageClassification

CONFIG_ERRORS = (ValueError, StrictDataclassClassValidationError)  # strict configs wrap the ValueError
TINY = dict(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, num_kernels=3,
            num_labels=5)


class MaskedTester(ZooModelTester):
    """The common tester on a masked variant of the tiny config."""

    def __init__(self, mask_type: str):
        super().__init__("gmm_vit")
        self.mask_type = mask_type

    def config(self, **overrides):
        return GmmVitConfig(**{**TINY, "attention_mask_type": self.mask_type, **overrides})


@pytest.mark.parametrize("mask_type", ["gmm", "elm"])
def test_common_checks_with_a_mask(mask_type, tmp_path):
    tester = MaskedTester(mask_type)
    model = tester.model(IMAGE_CLASSIFICATION)
    assert all(isinstance(block.attn, MaskedSelfAttention) for block in model.vit.blocks)
    for task in tester.tasks:
        tester.check_forward_shapes(task)
        tester.check_no_nan(task)
        tester.check_tuple_dict_equivalence(task)
        tester.check_batching_equivalence(task)
        tester.check_hidden_states(task)
        tester.check_attentions(task)
        tester.check_meta_init_completeness(task)
        tester.check_every_parameter_gets_a_gradient(task)
        tester.check_bad_inputs(task)
    tester.check_save_load(IMAGE_CLASSIFICATION, tmp_path / "save")
    tester.check_gradient_checkpointing(IMAGE_CLASSIFICATION, use_reentrant=False)


def _same_weights_plain_vit(model: GmmVitForImageClassification) -> VitForImageClassification:
    fields = {k: v for k, v in model.config.to_dict().items() if k in VitConfig.__dataclass_fields__}
    fields.pop("transformers_version", None)
    plain = VitForImageClassification(VitConfig(**fields)).eval()
    state = {k: v for k, v in model.state_dict().items() if ".attn.mask." not in k}
    plain.load_state_dict(state, strict=True)
    return plain


def _perturbed(config: GmmVitConfig) -> GmmVitForImageClassification:
    torch.manual_seed(0)
    model = GmmVitForImageClassification(config).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if ".attn.mask." not in name:
                param.add_(torch.randn_like(param) * 0.1)
    return model


@pytest.mark.parametrize("prefix", [dict(), dict(class_token=True, pooling="cls", num_register_tokens=2)])
@pytest.mark.parametrize("mask_type", ["gmm", "elm"])
def test_all_ones_mask_equals_plain_vit(mask_type, prefix):
    model = _perturbed(GmmVitConfig(**TINY, attention_mask_type=mask_type, **prefix))
    with torch.no_grad():
        for block in model.vit.blocks:
            mask = block.attn.mask
            if mask_type == "elm":
                mask.mask.fill_(1.0)
            else:  # one unit-weight, very wide Gaussian: G ** (1 / 1e8) == 1 up to float rounding
                mask.alpha.zero_()
                mask.alpha[0] = 1.0
                mask.sigma.fill_(1e4)
            torch.testing.assert_close(mask.weights(), torch.ones_like(mask.weights()), atol=1e-6, rtol=0)
    plain = _same_weights_plain_vit(model)
    pixels = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = plain(pixels).logits
        torch.testing.assert_close(model(pixels).logits, expected, atol=1e-5, rtol=0)
        # and a real mask changes the output (the test would fail if the mask were ignored)
        for block in model.vit.blocks:
            block.attn.mask.reset_parameters()
            if mask_type == "elm":
                block.attn.mask.mask.normal_()
        assert (model(pixels).logits - expected).abs().max() > 1e-3


def test_no_mask_is_the_plain_vit():
    model = _perturbed(GmmVitConfig(**TINY, attention_mask_type="none", class_token=True, pooling="cls"))
    assert not any(isinstance(b.attn, MaskedSelfAttention) for b in model.vit.blocks)
    pixels = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(pixels).logits, _same_weights_plain_vit(model)(pixels).logits,
                                   atol=1e-6, rtol=0)


def test_gmm_depends_on_the_relative_offset_only():
    """Translation equivariance: W[h, i, j] is a function of p_i - p_j (same value for every pair with the same
    offset, anywhere in a non-square grid), and equals the closed form sum_k alpha exp(-d^2 / (2 (sigma^2 + eps)))."""
    torch.manual_seed(0)
    height, width = 5, 7
    mask = GaussianMixtureMask(num_heads=3, num_kernels=4, grid_size=(height, width), sigma_init_mean=1.5,
                               sigma_init_std=0.5)
    weights = mask.weights().detach()
    rows = torch.arange(height * width) // width
    cols = torch.arange(height * width) % width
    offsets = {}
    for i in range(height * width):
        for j in range(height * width):
            offsets.setdefault((int(rows[i] - rows[j]), int(cols[i] - cols[j])), []).append((i, j))
    for pairs in offsets.values():
        values = torch.stack([weights[:, i, j] for i, j in pairs])
        torch.testing.assert_close(values, values[:1].expand_as(values), atol=1e-7, rtol=1e-6)
    d2 = ((rows[:, None] - rows[None]) ** 2 + (cols[:, None] - cols[None]) ** 2).double()
    sigma, alpha = mask.sigma.detach().double(), mask.alpha.detach().double()
    closed = (alpha * torch.exp(-d2 / (2 * (sigma**2 + SIGMA_EPS)))).sum(0)
    torch.testing.assert_close(weights.double(), closed, atol=1e-6, rtol=1e-5)
    # shifting the whole image by one patch shifts the mask: rows/cols of the shifted tokens match
    inner = [i for i in range(height * width) if cols[i] < width - 1]
    shifted = [i + 1 for i in inner]
    torch.testing.assert_close(weights[:, inner][:, :, inner], weights[:, shifted][:, :, shifted])


def test_prefix_tokens_are_not_masked():
    mask = GaussianMixtureMask(num_heads=2, num_kernels=2, grid_size=(3, 3), num_prefix_tokens=2)
    weights = mask.weights()
    assert weights.shape == (2, 11, 11)
    assert torch.equal(weights[:, :2], torch.ones(2, 2, 11)) and torch.equal(weights[:, :, :2], torch.ones(2, 11, 2))
    elm = ElementwiseLearnableMask(grid_size=(3, 3), num_prefix_tokens=2)
    assert elm.mask.shape == (11, 11) and not elm.mask.any()  # official zero init


def test_distance_kernel_matches_official_formula():
    kernel = gaussian_distance_kernel((8, 8))[0, 0]
    # official: mask[i, j] = -(dx^2 + dy^2) with x = i % side, y = i // side; exp(mask) ** (1 / 2)
    i, j = 10, 53
    dx, dy = i % 8 - j % 8, i // 8 - j // 8
    assert kernel[i, j] == torch.exp(torch.tensor(-(dx**2 + dy**2), dtype=torch.float32)) ** 0.5
    assert kernel.shape == (64, 64) and torch.equal(kernel.diagonal(), torch.ones(64))


def test_masked_attention_never_uses_sdpa_and_matches_eager(tmp_path):
    torch.manual_seed(0)
    model = GmmVitForImageClassification(GmmVitConfig(**TINY))
    model.save_pretrained(tmp_path)
    sdpa = GmmVitForImageClassification.from_pretrained(tmp_path, attn_implementation="sdpa").eval()
    eager = GmmVitForImageClassification.from_pretrained(tmp_path, attn_implementation="eager").eval()
    pixels = torch.randn(2, 3, 32, 32)
    sdpa_function = torch.nn.functional.scaled_dot_product_attention
    with mock.patch("torch.nn.functional.scaled_dot_product_attention", wraps=sdpa_function) as spy, torch.no_grad():
        out = sdpa(pixels).logits
    assert spy.call_count == 0, "the multiplicative mask cannot run through SDPA; masked layers must be explicit"
    with torch.no_grad():
        torch.testing.assert_close(out, eager(pixels).logits, atol=0, rtol=0)


def test_bad_configs_fail_clearly():
    with pytest.raises(CONFIG_ERRORS, match="num_kernels"):
        GmmVitConfig(**{**TINY, "num_kernels": 0})
    with pytest.raises(CONFIG_ERRORS, match="attention_mask_type"):
        GmmVitConfig(**TINY, attention_mask_type="gaussian")
    with pytest.raises(ValueError, match="num_kernels >= 1"):
        GaussianMixtureMask(num_heads=2, num_kernels=0, grid_size=(4, 4))
    with pytest.raises(ValueError, match="grid_size"):
        GaussianMixtureMask(num_heads=2, num_kernels=2, grid_size=(0, 4))
    # a mask grid that does not match the token grid
    config = GmmVitConfig(**TINY)
    attention = MaskedSelfAttention(config, 32, 2, GaussianMixtureMask(2, 2, grid_size=(4, 4)))
    with pytest.raises(ValueError, match=r"4x4 patch grid \(16 tokens\) but got 25 tokens"):
        attention(torch.randn(1, 25, 32))


@pytest.mark.parametrize("mask_type", ["gmm", "elm"])
def test_unsupported_inputs_fail_clearly(mask_type):
    model = GmmVitModel(GmmVitConfig(**TINY, attention_mask_type=mask_type)).eval()
    with pytest.raises(ValueError, match="40x40 doesn't match image_size 32x32.*4x4 patch grid"):
        model(torch.randn(1, 3, 40, 40), interpolate_pos_encoding=True)
    with pytest.raises(ValueError, match="token removal is not supported"):
        model(torch.randn(1, 3, 32, 32), mask_ratio=0.5)
    # without a mask, the plain ViT features stay available
    plain = GmmVitModel(GmmVitConfig(**TINY, attention_mask_type="none")).eval()
    assert plain(torch.randn(1, 3, 40, 40), interpolate_pos_encoding=True).last_hidden_state.shape == (1, 25, 32)
    assert plain(torch.randn(1, 3, 32, 32), mask_ratio=0.5).last_hidden_state.shape == (1, 8, 32)


def test_paper_parameter_counts():
    """Official ViT-Lite (CIFAR-100): 2,713,892 params without and 2,714,588 with GMM, counting the official fixed
    (1, 1, 64, 64) distance kernel that it registers as a frozen nn.Parameter (4,096 entries; a buffer here)."""
    with torch.device("meta"):
        gmm = GmmVitForImageClassification(GmmVitConfig(num_labels=100))
        vit = GmmVitForImageClassification(GmmVitConfig(num_labels=100, attention_mask_type="none",
                                                        class_token=True, pooling="cls"))
    assert sum(p.numel() for p in gmm.parameters()) + 64 * 64 == 2_714_588
    assert sum(p.numel() for p in vit.parameters()) + 64 * 64 == 2_713_892
