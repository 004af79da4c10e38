"""MTO property tests (no official code exists; the properties are those the paper states, see
layers/masked_token_optimization.py): recalibration removes masked tokens from the visible tokens' aggregation
(visible outputs then equal the visible-only encoder and ignore the mask token), scales that attention by the
weight exactly as written on probabilities, is a no-op when off or at weight 1 (the SimMIM baseline), the
singularity loss and its depth schedule, gradients, and bad input."""

import math

import pytest
import torch
from huggingface_hub.errors import StrictDataclassClassValidationError

from hf_vision_zoo.layers.masked_token_optimization import (
    masked_attention_mass,
    recalibrate_attention,
    recalibration_bias,
    singularity_layer_weights,
    singularity_loss,
    singularity_term,
)
from hf_vision_zoo.layers.masking import random_masking
from hf_vision_zoo.models.mto import MtoConfig, MtoForPreTraining, MtoModel

CONFIG_ERRORS = (ValueError, StrictDataclassClassValidationError)  # strict configs wrap the ValueError
TINY = dict(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2)


def model(seed=0, **overrides):
    torch.manual_seed(seed)
    m = MtoForPreTraining(MtoConfig(**{**TINY, **overrides})).eval()
    with torch.no_grad():  # perturb so the zero-initialised tokens / biases matter
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return m


def inputs(batch=2, seed=1, ratio=0.5):
    g = torch.Generator().manual_seed(seed)
    pixels = torch.randn(batch, 3, 32, 32, generator=g)
    mask = random_masking(torch.rand(batch, 16, generator=g), ratio).mask.bool()
    return pixels, mask


def test_recalibration_bias_layout():
    mask = torch.tensor([[True, False, False, True]])
    bias = recalibration_bias(mask, num_prefix_tokens=1, weight=0.0)
    assert bias.shape == (1, 1, 5, 5)
    keys = torch.tensor([False, True, False, False, True])
    for q in range(5):
        for k in range(5):
            excluded = (not keys[q]) and keys[k]  # visible (or prefix) query, masked key
            assert (bias[0, 0, q, k] < -1e30) == excluded
            assert (bias[0, 0, q, k] == 0) == (not excluded)
    half = recalibration_bias(mask, 1, weight=0.5)
    assert torch.allclose(half[0, 0, 0, 1], torch.tensor(math.log(0.5)))
    assert recalibration_bias(mask, 1, weight=1.0) is None


@pytest.mark.parametrize("weight", [0.0, 0.3, 1.0])
def test_recalibrated_attention_equals_the_formula_on_probabilities(weight):
    """Model attentions with MTO == baseline attentions (same weights, same input to the first block) rescaled:
    visible query -> masked key times `weight`, row renormalised."""
    pixels, mask = inputs()
    on = model(mto_recalibration_weight=weight)
    off = model(use_mto=False)
    with torch.no_grad():
        a_on = on(pixels, bool_masked_pos=mask, output_attentions=True).attentions[0]
        a_off = off(pixels, bool_masked_pos=mask, output_attentions=True).attentions[0]
    torch.testing.assert_close(a_on, recalibrate_attention(a_off, mask, 1, weight), rtol=1e-5, atol=1e-6)
    mass_on, mass_off = masked_attention_mass(a_on, mask, 1), masked_attention_mass(a_off, mask, 1)
    if weight == 0.0:
        assert torch.all(mass_on == 0)
    else:
        assert torch.all(mass_on <= mass_off + 1e-7)
    assert torch.all(mass_off > 0)


def test_excluded_masked_tokens_leave_visible_tokens_as_the_visible_only_encoder():
    """weight 0: [CLS] and visible tokens never aggregate masked ones, so they equal the encoder run on the visible
    patches alone (the MAE path of the same weights), and changing the mask token changes nothing for them."""
    pixels, mask = inputs()
    m = model()
    with torch.no_grad():
        out = m(pixels, bool_masked_pos=mask, output_hidden_states=True)
        full = m.vit.layernorm(out.hidden_states[-1])
        visible_only = m.vit(pixels, mask=mask).last_hidden_state
        keep = (~mask).nonzero()[:, 1].view(mask.shape[0], -1) + 1
        gathered = torch.cat([full[:, :1], torch.gather(full, 1, keep[..., None].expand(-1, -1, full.shape[-1]))], 1)
        torch.testing.assert_close(gathered, visible_only, rtol=1e-5, atol=1e-5)
        m.vit.embeddings.mask_token.add_(torch.randn_like(m.vit.embeddings.mask_token))
        changed = m(pixels, bool_masked_pos=mask, output_hidden_states=True)
        new_full = m.vit.layernorm(changed.hidden_states[-1])
    visible = torch.cat([torch.ones(mask.shape[0], 1, dtype=torch.bool), ~mask], 1)
    torch.testing.assert_close(new_full[visible], full[visible], rtol=0, atol=1e-6)
    assert not torch.allclose(new_full[~visible], full[~visible])


def test_without_mto_visible_tokens_do_depend_on_the_mask_token():
    pixels, mask = inputs()
    m = model(use_mto=False)
    with torch.no_grad():
        before = m(pixels, bool_masked_pos=mask, output_hidden_states=True).hidden_states[-1]
        m.vit.embeddings.mask_token.add_(torch.randn_like(m.vit.embeddings.mask_token))
        after = m(pixels, bool_masked_pos=mask, output_hidden_states=True).hidden_states[-1]
    assert not torch.allclose(before[:, 0], after[:, 0])


def test_off_and_boundary_settings_equal_the_simmim_baseline():
    pixels, mask = inputs()
    baseline = model(use_mto=False)
    with torch.no_grad():
        expected = baseline(pixels, bool_masked_pos=mask)
        for kwargs in (dict(mto_recalibration_weight=1.0), dict(use_mto=False, mto_singularity_weight=1.0,
                                                                 mto_recalibration_weight=0.0)):
            got = model(**kwargs)(pixels, bool_masked_pos=mask)
            torch.testing.assert_close(got.loss, expected.loss, rtol=0, atol=0)
            torch.testing.assert_close(got.logits, expected.logits, rtol=0, atol=0)
            assert got.mto_loss is None


def test_sdpa_and_eager_agree_with_recalibration():
    pixels, mask = inputs()
    m = model(mto_recalibration_weight=0.0)
    with torch.no_grad():
        m.set_attn_implementation("eager")
        eager = m(pixels, bool_masked_pos=mask).logits
        m.set_attn_implementation("sdpa")
        sdpa = m(pixels, bool_masked_pos=mask).logits
    torch.testing.assert_close(sdpa, eager, rtol=1e-5, atol=1e-5)


def test_reconstruction_loss_is_l1_on_masked_patches():
    pixels, mask = inputs()
    m = model()
    with torch.no_grad():
        out = m(pixels, bool_masked_pos=mask)
        target = pixels.unfold(2, 8, 8).unfold(3, 8, 8)  # (B, C, 4, 4, 8, 8)
        target = target.permute(0, 2, 3, 4, 5, 1).reshape(2, 16, -1)
        per_patch = (out.logits - target).abs().mean(-1)
    torch.testing.assert_close(out.reconstruction_loss, per_patch[mask].mean())
    torch.testing.assert_close(out.loss, out.reconstruction_loss)  # singularity off by default


def test_singularity_term_formula_on_small_tensors():
    hidden = torch.tensor([[[9.0, 9.0], [1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.6, 0.8]]])  # prefix + 4 patches
    mask = torch.tensor([[True, False, True, False]])  # masked patches 0 and 2
    # masked (1,0): cos with visible (0,1)=0, (0.6,0.8)=0.6 -> 0.6 ; masked (-1,0): 0, -0.6 -> max 0 -> 0
    torch.testing.assert_close(singularity_term(hidden, mask, 1), torch.tensor(0.3))
    assert singularity_layer_weights(3, "linear_decay") == pytest.approx([0.5, 1 / 3, 1 / 6])
    assert singularity_layer_weights(3, "input") == [1.0, 0.0, 0.0]
    assert singularity_layer_weights(4, "uniform") == [0.25] * 4
    states = (hidden, hidden * 0 + 1.0, hidden)  # middle state: all tokens identical -> cos 1
    torch.testing.assert_close(singularity_loss(states, mask, 1, "linear_decay"),
                               torch.tensor(0.5 * 0.3 + (1 / 3) * 1.0 + (1 / 6) * 0.3))


def test_singularity_loss_is_added_and_pushes_the_mask_token_away():
    pixels, mask = inputs()
    m = model(mto_singularity_weight=0.5, mto_singularity_schedule="input")
    out = m(pixels, bool_masked_pos=mask, output_hidden_states=True)
    expected = 0.5 * singularity_loss(out.hidden_states, mask, 1, "input")
    torch.testing.assert_close(out.mto_loss, expected)
    torch.testing.assert_close(out.loss, out.reconstruction_loss + out.mto_loss)
    out.mto_loss.backward()
    assert m.vit.embeddings.mask_token.grad.abs().sum() > 0


def test_gradients_reach_every_parameter_with_mto_on():
    pixels, mask = inputs()
    m = model(mto_singularity_weight=0.1).train()
    m(pixels, bool_masked_pos=mask).loss.backward()
    missing = [n for n, p in m.named_parameters() if p.grad is None or not p.grad.any()]
    assert not missing, missing


def test_noise_gives_reproducible_masks_and_encoder_reloads(tmp_path):
    pixels, _ = inputs()
    m = model()
    noise = torch.rand(2, 16, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        a, b = m(pixels, noise=noise, mask_ratio=0.75), m(pixels, noise=noise, mask_ratio=0.75)
    assert torch.equal(a.mask, b.mask) and a.mask.sum(1).tolist() == [12.0, 12.0]
    torch.testing.assert_close(a.loss, b.loss, rtol=0, atol=0)
    m.save_pretrained(tmp_path)
    encoder = MtoModel.from_pretrained(tmp_path)
    torch.testing.assert_close(encoder.embeddings.patch_embed.proj.weight, m.vit.embeddings.patch_embed.proj.weight)
    assert encoder.embeddings.mask_token is None


def test_bad_input_fails_clearly():
    pixels, mask = inputs()
    m = model()
    with pytest.raises(ValueError, match="shape"):
        m(pixels, bool_masked_pos=mask[:, :8])
    with pytest.raises(ValueError, match="not both"):
        m(pixels, bool_masked_pos=mask, mask_ratio=0.5)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        m(pixels, mask_ratio=1.0)
    with pytest.raises(TypeError, match="bool"):
        m(pixels, bool_masked_pos=mask.float())
    with pytest.raises(ValueError, match="image_size|multiple"):
        m(torch.randn(2, 3, 28, 28))
    with pytest.raises(CONFIG_ERRORS, match=r"\[0, 1\]"):
        MtoConfig(**TINY, mto_recalibration_weight=1.5)
    with pytest.raises(CONFIG_ERRORS, match="use_mask_token"):
        MtoConfig(**TINY, use_mask_token=False)
    with pytest.raises(CONFIG_ERRORS, match="schedule"):
        MtoConfig(**TINY, mto_singularity_schedule="cubic")
    with pytest.raises(CONFIG_ERRORS, match=">= 0"):
        MtoConfig(**TINY, mto_singularity_weight=-1.0)


def test_the_switch_on_an_mae_decoder_via_the_shared_hooks():
    """The pattern the MAE/HPM owners would add: the decoder's blocks get `recalibration_bias(mask, P, 0)`; the
    visible decoder tokens then no longer depend on the decoder's mask token, and weight 1 is the plain decoder."""
    from hf_vision_zoo.models.mae import MaeConfig, MaeForPreTraining
    from hf_vision_zoo.layers.masked_token_optimization import run_blocks

    torch.manual_seed(0)
    mae = MaeForPreTraining(MaeConfig(**TINY, decoder_hidden_size=16, decoder_num_hidden_layers=2,
                                      decoder_num_attention_heads=2)).eval()
    pixels, mask = inputs()
    with torch.no_grad():
        out = mae(pixels, mask=mask)
        latent = mae.vit(pixels, mask=mask).last_hidden_state
        decoder = mae.decoder

        def decode(weight):
            x = decoder.embed_tokens(latent, out.ids_restore)
            x, _, _ = run_blocks(decoder.blocks, x, recalibration_bias(mask, 1, weight))
            return decoder.pred(decoder.norm(x))[:, 1:]

        torch.testing.assert_close(decode(1.0), out.logits, rtol=0, atol=0)
        before = decode(0.0)
        decoder.mask_token.add_(torch.randn_like(decoder.mask_token))
        after = decode(0.0)
    torch.testing.assert_close(after[~mask], before[~mask], rtol=0, atol=1e-6)
    assert not torch.allclose(after[mask], before[mask])
