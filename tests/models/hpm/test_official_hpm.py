"""Parity with the OFFICIAL HPM code (Haochen-Wang409/HPM at c15ae90, `models_mae_learn_loss.py`) through the stored
fixture from tests/fixtures/make_hpm_official_fixture.py: the EMA teacher's patch scores, the easy-to-hard masks at
several epochs (official `generate_mask(..., guide=True, epoch, total_epoch)`), and the student's reconstruction,
loss predictions and every loss term (pixel MSE with norm_pix_loss off/on, relative and absolute loss-prediction
objectives), all at atol 1e-5 with the official state dicts converted by `conversion/hpm.py`."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from hf_vision_zoo.conversion import convert_to_model
from hf_vision_zoo.conversion import hpm as hpm_conversion
from hf_vision_zoo.models.hpm import HpmForPreTraining

FIXTURES = Path(__file__).parents[2] / "fixtures" / "hpm_official"
ATOL = 1e-5
TOTAL_EPOCHS, MAIN_EPOCH = 200, 150


@pytest.fixture(scope="module")
def fixture():
    tensors = load_file(FIXTURES / "hpm.safetensors")
    state = {k[len("state_dict."):]: v for k, v in tensors.items() if k.startswith("state_dict.")}
    ema = {hpm_conversion.EMA_PREFIX + k[len("ema_state_dict."):]: v for k, v in tensors.items()
           if k.startswith("ema_state_dict.")}
    return tensors, {**state, **ema}


def build(checkpoint, **overrides):
    config = hpm_conversion.infer_config(checkpoint, "official", num_attention_heads=2, decoder_num_attention_heads=2,
                                         **overrides)
    return convert_to_model("hpm", checkpoint, config, "official", task="pretraining")


def official_order(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Patch order -> the official decoder order (visible patches, then masked ones, each ascending)."""
    rows = [torch.cat([v[~m], v[m]]) for v, m in zip(values, mask)]
    return torch.stack(rows)


def test_recipe_is_recorded():
    recipe = json.loads((FIXTURES / "recipe.json").read_text())
    assert recipe["commit"] == "c15ae90" and recipe["mask_ratio"] == 0.75
    assert recipe["kwargs"]["decoder_depth"] == 2


def test_converted_config_and_keys(fixture):
    _, checkpoint = fixture
    model = build(checkpoint)  # convert_to_model loads strictly: zero missing / zero unexpected keys
    config = model.config
    assert (config.hidden_size, config.num_hidden_layers, config.decoder_hidden_size) == (32, 2, 16)
    assert config.loss_predictor_depth == 2 and config.use_ema_teacher and not config.norm_pix_loss
    torch.testing.assert_close(model.loss_predictor.pred.weight, checkpoint["decoder_pred_losspred.weight"])
    torch.testing.assert_close(model.teacher.loss_predictor.pred.weight,
                               checkpoint["ema.decoder_pred_losspred.weight"])
    assert not torch.equal(model.teacher.vit.blocks[0].attn.qkv.weight, model.vit.blocks[0].attn.qkv.weight)


def test_teacher_scores_match_official(fixture):
    tensors, checkpoint = fixture
    model = build(checkpoint)
    scores = model.score_patches(tensors["pixel_values"])
    torch.testing.assert_close(scores, tensors["teacher_loss_pred"], atol=ATOL, rtol=0)


@pytest.mark.parametrize("epoch", [0, 99, 150, 199])
def test_easy_to_hard_masks_match_official(fixture, epoch):
    tensors, checkpoint = fixture
    model = build(checkpoint)
    progress = HpmForPreTraining.progress_from_epoch(epoch, TOTAL_EPOCHS)
    mask, hard = model.generate_mask(tensors["teacher_loss_pred"], noise=tensors[f"noise_epoch{epoch}"],
                                     progress=progress)
    assert torch.equal(mask, tensors[f"mask_epoch{epoch}"])
    expected_hard = int(12 * 0.5 * (epoch + 1) / TOTAL_EPOCHS)  # official len_loss
    assert hard.sum(1).tolist() == [expected_hard] * 2 and bool((mask | ~hard).all())


def test_full_step_from_teacher_matches_official(fixture):
    """forward without a mask: the teacher scores, the schedule at the epoch's progress and the noise pick the
    official mask; then the student's loss terms are the official ones."""
    tensors, checkpoint = fixture
    model = build(checkpoint)
    model.set_progress(HpmForPreTraining.progress_from_epoch(MAIN_EPOCH, TOTAL_EPOCHS))
    out = model(tensors["pixel_values"], noise=tensors[f"noise_epoch{MAIN_EPOCH}"])
    assert torch.equal(out.mask.bool(), tensors[f"mask_epoch{MAIN_EPOCH}"])
    assert out.hard_mask.sum().item() == 2 * 4
    torch.testing.assert_close(out.reconstruction_loss, tensors["loss_mean_norm_pix_False"][0], atol=ATOL, rtol=0)
    torch.testing.assert_close(out.loss_prediction_loss, tensors["loss_learn_relative_True_norm_pix_False"][0],
                               atol=ATOL, rtol=0)


@pytest.mark.parametrize("norm_pix_loss", [False, True])
@pytest.mark.parametrize("relative", [True, False])
def test_student_outputs_and_losses_match_official(fixture, norm_pix_loss, relative):
    tensors, checkpoint = fixture
    model = build(checkpoint, norm_pix_loss=norm_pix_loss, relative_loss=relative)
    x, mask = tensors["pixel_values"], tensors[f"mask_epoch{MAIN_EPOCH}"]
    with torch.no_grad():
        out = model(x, mask=mask)
    assert torch.equal(out.mask.bool(), mask) and out.hard_mask is None
    torch.testing.assert_close(official_order(out.logits, mask), tensors["pix_pred"], atol=ATOL, rtol=0)
    torch.testing.assert_close(official_order(out.predicted_losses, mask), tensors["loss_pred"], atol=ATOL, rtol=0)
    suffix = f"norm_pix_{norm_pix_loss}"
    matrix = model.patch_losses(x, out.logits)[mask].reshape(2, 12)
    torch.testing.assert_close(matrix, tensors[f"loss_matrix_{suffix}"], atol=ATOL, rtol=0)
    rec, learn = tensors[f"loss_mean_{suffix}"][0], tensors[f"loss_learn_relative_{relative}_{suffix}"][0]
    torch.testing.assert_close(out.reconstruction_loss, rec, atol=ATOL, rtol=0)
    torch.testing.assert_close(out.loss_prediction_loss, learn, atol=ATOL, rtol=0)
    torch.testing.assert_close(out.loss, rec + learn, atol=ATOL, rtol=0)
