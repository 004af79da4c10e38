"""The MTO switch on MAE (and HPM, its subclass): masked token optimization ("Emerging Property of Masked Token for
Effective Pre-training", https://arxiv.org/abs/2404.08330) applied in the MAE decoder, where the mask tokens are.

Proven here: with `use_mto` and recalibration weight 0 the visible (and [CLS]) decoder tokens ignore the mask token
(changing it leaves their predictions unchanged) while plain MAE's do not; weight 1 and `use_mto=False` give plain
MAE bit for bit; the singularity loss is `mto_singularity_weight * singularity_loss` over the decoder's tokens and is
added to the loss; HPM trains with the switch; gradients reach every trainable parameter; the `attention_mask`
arguments of `VitModel` / `MaeDecoder` reach the blocks and are validated; bad MTO settings fail clearly; configs
saved without the MTO fields still load.
"""

import json

import pytest
import torch
from huggingface_hub.errors import StrictDataclassClassValidationError, StrictDataclassFieldValidationError

from hf_vision_zoo.layers.masked_token_optimization import recalibration_bias, run_blocks, singularity_loss
from hf_vision_zoo.layers.masking import random_masking
from hf_vision_zoo.models.hpm import HpmConfig, HpmForPreTraining
from hf_vision_zoo.models.mae import MaeConfig, MaeForPreTraining
from hf_vision_zoo.models.vit import VitConfig, VitModel

CONFIG_ERRORS = (ValueError, StrictDataclassClassValidationError)
TINY = dict(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
            decoder_hidden_size=16, decoder_num_hidden_layers=2, decoder_num_attention_heads=2)


def perturb(m, seed=0):
    torch.manual_seed(seed)
    with torch.no_grad():  # std 0.1 so the zero-initialised biases / tokens matter
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return m.eval()


def mae(seed=0, **overrides):
    torch.manual_seed(seed)
    return perturb(MaeForPreTraining(MaeConfig(**{**TINY, **overrides})), seed)


def inputs(batch=2, seed=1, ratio=0.5):
    g = torch.Generator().manual_seed(seed)
    pixels = torch.randn(batch, 3, 32, 32, generator=g)
    mask = random_masking(torch.rand(batch, 16, generator=g), ratio).mask.bool()
    return pixels, mask


def visible_and_masked_after_changing_the_mask_token(model, pixels, mask):
    with torch.no_grad():
        before = model(pixels, mask=mask).logits
        model.decoder.mask_token.add_(torch.randn_like(model.decoder.mask_token))
        after = model(pixels, mask=mask).logits
    return before, after


def test_mto_weight_0_visible_decoder_tokens_ignore_the_mask_token():
    pixels, mask = inputs()
    before, after = visible_and_masked_after_changing_the_mask_token(mae(use_mto=True), pixels, mask)
    torch.testing.assert_close(after[~mask], before[~mask], rtol=0, atol=1e-6)
    assert not torch.allclose(after[mask], before[mask])  # masked tokens still read the mask token


def test_without_mto_visible_decoder_tokens_depend_on_the_mask_token():
    pixels, mask = inputs()
    before, after = visible_and_masked_after_changing_the_mask_token(mae(use_mto=False), pixels, mask)
    assert not torch.allclose(after[~mask], before[~mask], atol=1e-4)


def test_weight_1_and_off_equal_plain_mae_exactly():
    pixels, mask = inputs()
    noise = torch.rand(2, 16, generator=torch.Generator().manual_seed(5))
    baseline = mae()
    assert baseline.config.use_mto is False  # the default
    with torch.no_grad():
        for kwargs in (dict(mask=mask), dict(noise=noise)):
            expected = baseline(pixels, **kwargs)
            for overrides in (dict(use_mto=True, mto_recalibration_weight=1.0),
                              dict(use_mto=False, mto_recalibration_weight=0.0, mto_singularity_weight=1.0)):
                got = mae(**overrides)(pixels, **kwargs)
                torch.testing.assert_close(got.loss, expected.loss, rtol=0, atol=0)
                torch.testing.assert_close(got.logits, expected.logits, rtol=0, atol=0)
                assert got.mto_loss is None and expected.mto_loss is None
        assert len(baseline(pixels, mask=mask, return_dict=False)) == 4  # loss, logits, mask, ids_restore: no mto_loss


def test_decoder_with_mto_equals_the_blocks_run_with_the_recalibration_mask():
    """The decoder's MTO path is `recalibration_bias(mask, P, weight)` given to every decoder block (eager and sdpa
    agree), and `MaeDecoder.forward(attention_mask=...)` passes the mask on."""
    pixels, mask = inputs()
    model = mae(use_mto=True, mto_recalibration_weight=0.3)
    with torch.no_grad():
        out = model(pixels, mask=mask)
        latent = model.vit(pixels, mask=mask).last_hidden_state
        x = model.decoder.embed_tokens(latent, out.ids_restore)
        x, _, _ = run_blocks(model.decoder.blocks, x, recalibration_bias(mask, 1, 0.3))
        manual = model.decoder.pred(model.decoder.norm(x))[:, 1:]
        via_forward = model.decoder(latent, out.ids_restore, attention_mask=recalibration_bias(mask, 1, 0.3))
        model.set_attn_implementation("eager")
        eager = model(pixels, mask=mask).logits
    torch.testing.assert_close(out.logits, manual, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(via_forward, manual, rtol=0, atol=0)
    torch.testing.assert_close(eager, out.logits, rtol=1e-5, atol=1e-5)


def test_singularity_loss_on_decoder_tokens_is_added():
    pixels, mask = inputs()
    model = mae(use_mto=True, mto_singularity_weight=0.5, mto_singularity_schedule="uniform")
    plain = mae(use_mto=True)  # same weights, singularity off
    with torch.no_grad():
        out, ref = model(pixels, mask=mask), plain(pixels, mask=mask)
        latent = model.vit(pixels, mask=mask).last_hidden_state
        x = model.decoder.embed_tokens(latent, out.ids_restore)
        _, states, _ = run_blocks(model.decoder.blocks, x, recalibration_bias(mask, 1, 0.0), True)
    torch.testing.assert_close(out.mto_loss, 0.5 * singularity_loss(states, mask, 1, "uniform"))
    assert out.mto_loss > 0
    torch.testing.assert_close(out.loss, ref.loss + out.mto_loss)
    torch.testing.assert_close(out.logits, ref.logits, rtol=0, atol=0)


def test_gradients_reach_every_trainable_parameter_with_mto_on():
    pixels, mask = inputs()
    model = mae(use_mto=True, mto_singularity_weight=0.1).train()
    model(pixels, mask=mask).loss.backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.any())]
    assert not missing, missing


def test_hpm_accepts_use_mto_forward_and_backward():
    torch.manual_seed(0)
    config = HpmConfig(**TINY, use_mto=True, mto_singularity_weight=0.1)
    model = perturb(HpmForPreTraining(config)).train()
    model.copy_to_teacher()
    pixels, mask = inputs()
    out = model(pixels, noise=torch.rand(2, 16, generator=torch.Generator().manual_seed(2)))
    assert out.mto_loss is not None and out.mto_loss > 0
    torch.testing.assert_close(out.loss, out.reconstruction_loss + out.loss_prediction_loss + out.mto_loss)
    out.loss.backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.any())]
    assert not missing, missing
    # the reconstruction decoder and the loss predictor both ignore the mask token at visible positions
    model.eval()
    with torch.no_grad():
        before = model(pixels, mask=mask)
        model.decoder.mask_token.add_(torch.randn_like(model.decoder.mask_token))  # (a constant shift is normed away)
        after = model(pixels, mask=mask)
    torch.testing.assert_close(after.logits[~mask], before.logits[~mask], rtol=0, atol=1e-6)
    torch.testing.assert_close(after.predicted_losses[~mask], before.predicted_losses[~mask], rtol=0, atol=1e-6)
    assert not torch.allclose(after.predicted_losses[mask], before.predicted_losses[mask])


def test_hpm_weight_1_equals_plain_hpm_exactly():
    pixels, mask = inputs()
    outs = []
    for overrides in ({}, dict(use_mto=True, mto_recalibration_weight=1.0)):
        torch.manual_seed(0)
        model = perturb(HpmForPreTraining(HpmConfig(**TINY, **overrides)))
        with torch.no_grad():
            outs.append(model(pixels, mask=mask))
    for field in ("loss", "logits", "predicted_losses"):
        torch.testing.assert_close(getattr(outs[1], field), getattr(outs[0], field), rtol=0, atol=0)


def test_vit_attention_mask_reaches_every_block_and_is_validated():
    torch.manual_seed(0)
    model = perturb(VitModel(VitConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2,
                                       num_attention_heads=2)))
    pixels, mask = inputs()
    bias = torch.zeros(2, 1, 17, 17)
    bias[..., 1:5] = torch.finfo(torch.float32).min  # nobody attends to patches 0-3
    with torch.no_grad():
        plain = model(pixels, output_hidden_states=True)
        got = model(pixels, attention_mask=bias, output_attentions=True)
        x, _, _ = run_blocks(model.blocks, plain.hidden_states[0], bias)
        zeros = model(pixels, attention_mask=torch.zeros(17, 17)).last_hidden_state  # broadcast (T, T)
        visible = model(pixels, mask=mask, attention_mask=torch.zeros(2, 2, 9, 9))  # P + V tokens
    torch.testing.assert_close(got.last_hidden_state, model.layernorm(x), rtol=1e-5, atol=1e-5)  # eager vs sdpa
    assert all(a[..., 1:5].abs().max() == 0 for a in got.attentions)
    assert not torch.allclose(got.last_hidden_state, plain.last_hidden_state)
    torch.testing.assert_close(zeros, plain.last_hidden_state, rtol=1e-5, atol=1e-6)
    assert visible.last_hidden_state.shape == (2, 9, 32)
    with pytest.raises(TypeError, match="float"):
        model(pixels, attention_mask=torch.ones(2, 1, 17, 17, dtype=torch.bool))
    with pytest.raises(ValueError, match="broadcast"):
        model(pixels, attention_mask=torch.zeros(2, 1, 9, 9))  # 17 tokens without masking
    with pytest.raises(ValueError, match="broadcast"):
        model(pixels, attention_mask=torch.zeros(3, 1, 17, 17))
    with pytest.raises(TypeError, match="tensor"):
        model(pixels, attention_mask=[[0.0]])


def test_decoder_attention_mask_is_validated():
    pixels, mask = inputs()
    model = mae()
    with torch.no_grad():
        out = model(pixels, mask=mask)
        latent = model.vit(pixels, mask=mask).last_hidden_state
        with pytest.raises(ValueError, match="broadcast"):
            model.decoder(latent, out.ids_restore, attention_mask=torch.zeros(2, 3, 17, 17))
        with pytest.raises(TypeError, match="float"):
            model.decoder(latent, out.ids_restore, attention_mask=torch.zeros(2, 1, 17, 17, dtype=torch.long))


@pytest.mark.parametrize("config_class", [MaeConfig, HpmConfig])
def test_bad_mto_config_fails_clearly(config_class):
    with pytest.raises(CONFIG_ERRORS, match=r"\[0, 1\]"):
        config_class(**TINY, use_mto=True, mto_recalibration_weight=1.5)
    with pytest.raises(CONFIG_ERRORS, match=r"\[0, 1\]"):
        config_class(**TINY, mto_recalibration_weight=-0.1)
    with pytest.raises(CONFIG_ERRORS, match=">= 0"):
        config_class(**TINY, use_mto=True, mto_singularity_weight=-1.0)
    with pytest.raises(CONFIG_ERRORS, match="schedule"):
        config_class(**TINY, use_mto=True, mto_singularity_schedule="cubic")
    with pytest.raises(CONFIG_ERRORS + (StrictDataclassFieldValidationError,), match="use_mto"):
        config_class(**TINY, use_mto="yes")


def test_configs_saved_without_mto_fields_still_load(tmp_path):
    pixels, mask = inputs()
    model = mae()
    model.save_pretrained(tmp_path)
    path = tmp_path / "config.json"
    saved = json.loads(path.read_text())
    for key in [k for k in saved if k == "use_mto" or k.startswith("mto_")]:
        del saved[key]
    path.write_text(json.dumps(saved))
    reloaded = MaeForPreTraining.from_pretrained(tmp_path).eval()
    assert reloaded.config.use_mto is False and reloaded.config.mto_recalibration_weight == 0.0
    with torch.no_grad():
        torch.testing.assert_close(reloaded(pixels, mask=mask).loss, model(pixels, mask=mask).loss, rtol=0, atol=0)
    on = MaeConfig(**TINY, use_mto=True, mto_singularity_weight=0.2)
    on.save_pretrained(tmp_path / "on")
    again = MaeConfig.from_pretrained(tmp_path / "on")
    assert again.use_mto is True and again.mto_singularity_weight == 0.2
