"""HPM properties: the easy-to-hard schedule (mined fraction vs progress, which patches are mined), the EMA teacher
driven by set_progress, the loss-prediction objectives, the converter's edge cases, and bad input."""

import math

import pytest
import torch
from huggingface_hub.errors import StrictDataclassClassValidationError

from hf_vision_zoo import registry
from hf_vision_zoo.conversion import ConversionError, convert_to_model
from hf_vision_zoo.conversion import hpm as hpm_conversion
from hf_vision_zoo.models.hpm import HpmConfig, HpmForPreTraining
from hf_vision_zoo.models.hpm.modeling_hpm import relative_loss_prediction_loss

torch.set_num_threads(1)


def tiny(**overrides) -> HpmConfig:
    return HpmConfig(**{**registry.get_architecture("hpm").tiny_config, **overrides})


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return HpmForPreTraining(tiny()).eval()


def pixels(batch=2, seed=0):
    return torch.randn(batch, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


# ---- schedule -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("progress", [0.0, 0.1, 0.25, 0.5, 0.66, 0.9, 1.0])
def test_mined_fraction_follows_progress(model, progress):
    scores = torch.randn(3, 16, generator=torch.Generator().manual_seed(1))
    mask, hard = model.generate_mask(scores, progress=progress)
    num_masked = 16 - int(16 * (1 - 0.75))
    assert mask.sum(1).tolist() == [num_masked] * 3
    assert hard.sum(1).tolist() == [int(num_masked * 0.5 * progress)] * 3  # official int((L - keep) * keep_ratio)
    assert bool((mask | ~hard).all())  # mined patches are masked
    top = scores.argsort(dim=1, descending=True)[:, :int(num_masked * 0.5 * progress)]
    assert bool(hard.gather(1, top).all())  # ... and they are the highest predicted losses


def test_mined_count_grows_monotonically_to_half_of_the_mask(model):
    scores = torch.randn(2, 16)
    counts = [int(model.generate_mask(scores, progress=p)[1][0].sum()) for p in torch.linspace(0, 1, 41).tolist()]
    assert counts == sorted(counts) and counts[0] == 0 and counts[-1] == 6


def test_progress_from_epoch_is_the_official_keep_ratio():
    for epoch, total in [(0, 200), (99, 200), (199, 200), (399, 800)]:
        progress = HpmForPreTraining.progress_from_epoch(epoch, total)
        assert 0.5 * progress == float((epoch + 1) / total) * 0.5
    with pytest.raises(ValueError, match="epoch"):
        HpmForPreTraining.progress_from_epoch(200, 200)


def test_without_easy_to_hard_the_mined_fraction_is_constant():
    model = HpmForPreTraining(tiny(easy_to_hard=False, hard_patch_ratio=0.25)).eval()
    for progress in (0.0, 0.5, 1.0):
        assert model.generate_mask(torch.randn(1, 16), progress=progress)[1].sum() == 3


def test_forward_uses_set_progress_and_noise(model):
    x = pixels()
    model.set_progress(0.0)
    noise = torch.rand(2, 16)
    out0 = model(x, noise=noise)
    assert out0.hard_mask.sum() == 0 and out0.mask.sum(1).tolist() == [12.0, 12.0]
    kept = noise.argsort(1)[:, :4]  # nothing mined: the 4 lowest-noise patches stay visible
    assert not out0.mask.gather(1, kept).any()
    model.set_progress(1.0)
    out1 = model(x, noise=noise)
    assert out1.hard_mask.sum(1).tolist() == [6, 6]
    mined = model.generate_mask(model.score_patches(x), noise=noise)[1]
    assert torch.equal(out1.hard_mask, mined)
    model.set_progress(0.0)


# ---- EMA teacher ----------------------------------------------------------------------------------------------
def test_teacher_starts_as_a_copy_and_is_frozen(model):
    for (_, s), (_, t) in zip(model.vit.named_parameters(), model.teacher.vit.named_parameters()):
        assert torch.equal(s, t)
    assert not any(p.requires_grad for p in model.teacher.parameters())
    model.train()
    assert not model.teacher.training
    model.eval()


def test_set_progress_advances_the_ema_teacher_once_per_step():
    torch.manual_seed(0)
    model = HpmForPreTraining(tiny()).train()
    teacher_before = model.teacher.loss_predictor.pred.weight.clone()
    model.set_progress(0.0)  # the first step: nothing to average yet
    assert torch.equal(model.teacher.loss_predictor.pred.weight, teacher_before)
    with torch.no_grad():  # an "optimizer step"
        model.loss_predictor.pred.weight.add_(1.0)
    model.set_progress(0.01)
    decay = model.ema_decay_at(0.0)
    assert decay == pytest.approx(0.999)
    expected = decay * teacher_before + (1 - decay) * model.loss_predictor.pred.weight
    torch.testing.assert_close(model.teacher.loss_predictor.pred.weight, expected)
    after = model.teacher.loss_predictor.pred.weight.clone()
    model.set_progress(0.01)  # same step again (gradient accumulation): no second update
    assert torch.equal(model.teacher.loss_predictor.pred.weight, after)
    model.eval()
    model.set_progress(0.5)  # evaluation never moves the teacher
    assert torch.equal(model.teacher.loss_predictor.pred.weight, after)


def test_ema_decay_schedule():
    model = HpmForPreTraining(tiny(ema_decay_warmup=0.125))
    assert model.ema_decay_at(0.0) == pytest.approx(0.999)
    assert model.ema_decay_at(0.0625) == pytest.approx(0.99945)  # official epoch 50 of 800: 0.999 + 0.5 * 0.0009
    assert model.ema_decay_at(0.125) == pytest.approx(0.9999) and model.ema_decay_at(1.0) == pytest.approx(0.9999)


def test_without_ema_teacher_the_model_scores_itself():
    torch.manual_seed(0)
    model = HpmForPreTraining(tiny(use_ema_teacher=False)).eval()
    assert model.teacher is None
    x = pixels()
    latent = model.vit(x).last_hidden_state
    expected = model.loss_predictor(model.decoder.embed_tokens(latent, None))
    torch.testing.assert_close(model.score_patches(x), expected)
    model.train()
    model.set_progress(0.5)
    model(x).loss.backward()


# ---- objectives ------------------------------------------------------------------------------------------------
def test_relative_loss_rewards_the_right_ranking():
    target = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    good = relative_loss_prediction_loss(target * 20, target)
    bad = relative_loss_prediction_loss(-target * 20, target)
    assert good < 1e-5 and bad > 10
    # only the order matters, not the scale of the losses (the point of the relative objective)
    cubed = relative_loss_prediction_loss(target, target**3)
    assert torch.allclose(relative_loss_prediction_loss(target, target), cubed)
    # ties are not pairs: all-equal targets give no valid pair and a zero loss
    assert relative_loss_prediction_loss(torch.randn(1, 4), torch.ones(1, 4)) == 0


def test_total_loss_is_the_sum_and_targets_are_detached(model):
    x = pixels()
    out = model(x, mask=torch.arange(16).repeat(2, 1) >= 4)
    torch.testing.assert_close(out.loss, out.reconstruction_loss + out.loss_prediction_loss)
    model.train()
    out = model(x, mask=torch.arange(16).repeat(2, 1) >= 4)
    grads = torch.autograd.grad(out.loss_prediction_loss, [model.decoder.pred.weight, model.loss_predictor.pred.weight],
                                allow_unused=True)
    assert grads[0] is None and grads[1].abs().sum() > 0  # the reconstruction is not trained by the loss predictor
    model.eval()


# ---- conversion -------------------------------------------------------------------------------------------------
def _official_like(model: HpmForPreTraining) -> dict:
    """The model's weights in the official layout (inverse of the converter, for round trips)."""
    names = {"vit.embeddings.cls_token": "cls_token", "vit.embeddings.position_embeddings": "pos_embed",
             "vit.embeddings.patch_embed.proj.": "patch_embed.proj.", "vit.blocks.": "blocks.",
             "vit.layernorm.": "norm.", "decoder.mask_token": "mask_token", "decoder.embed.": "decoder_embed.",
             "decoder.position_embeddings": "decoder_pos_embed", "decoder.blocks.": "decoder_blocks.",
             "decoder.norm.": "decoder_norm.", "decoder.pred.": "decoder_pred.",
             "loss_predictor.blocks.": "decoder_blocks_losspred.", "loss_predictor.norm.": "decoder_norm_losspred.",
             "loss_predictor.pred.": "decoder_pred_losspred."}
    out = {}
    for key, value in model.state_dict().items():
        if key.startswith("teacher."):
            continue
        for new, old in names.items():
            if key.startswith(new):
                out["module." + old + key[len(new):]] = value
                break
    return out


def test_converter_without_ema_copies_the_model_into_the_teacher(model):
    official = _official_like(model)
    converted = convert_to_model("hpm", official, model.config, "official", task="pretraining")
    for key, value in converted.state_dict().items():
        source = key[len("teacher."):] if key.startswith("teacher.") else key
        assert torch.equal(value, model.state_dict()[source]), key
    config = hpm_conversion.infer_config(official, "official", num_attention_heads=2, decoder_num_attention_heads=2)
    assert config.decoder_num_hidden_layers == 1 and config.loss_predictor_num_hidden_layers is None


def test_converter_rejects_other_checkpoints(model):
    official = _official_like(model)
    plain_mae = {k: v for k, v in official.items() if "losspred" not in k}
    with pytest.raises(ConversionError, match="loss predictor"):
        hpm_conversion.convert_state_dict(plain_mae, model.config, "official")
    with pytest.raises(ConversionError, match="source"):
        hpm_conversion.convert_state_dict(official, model.config, "timm")
    with_ema = {**official, **{"ema." + k: v for k, v in official.items()}}
    with pytest.raises(ConversionError, match="use_ema_teacher"):
        hpm_conversion.convert_state_dict(with_ema, tiny(use_ema_teacher=False), "official")
    with pytest.raises(ConversionError, match="transformers"):
        hpm_conversion.config_from_transformers({"model_type": "vit_mae"})


def test_load_official_training_checkpoint(model, tmp_path):
    official = _official_like(model)
    path = tmp_path / "hpm_ep800.pth"
    torch.save({"epoch": 800, "state_dict": official, "model": "mae_vit_base_patch16_dec512d8b",
                "ema_state_dict": {k[len("module."):]: v + 1 for k, v in official.items()}}, path)
    flat = hpm_conversion.load_official_checkpoint(path)
    converted = convert_to_model("hpm", flat, model.config, "official", task="pretraining")
    torch.testing.assert_close(converted.teacher.loss_predictor.pred.weight, model.loss_predictor.pred.weight + 1)
    torch.testing.assert_close(converted.loss_predictor.pred.weight, model.loss_predictor.pred.weight)


# ---- bad input ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("progress", [-0.1, 1.5, math.nan, True, "0.5", None])
def test_set_progress_rejects_bad_values(model, progress):
    with pytest.raises(ValueError, match="progress"):
        model.set_progress(progress)


def test_bad_masks_noise_and_images(model):
    x = pixels()
    with pytest.raises(ValueError, match="mask must have shape"):
        model(x, mask=torch.zeros(2, 15, dtype=torch.bool))
    uneven = torch.zeros(2, 16, dtype=torch.bool)
    uneven[0, :12], uneven[1, :11] = True, True
    with pytest.raises(ValueError):
        model(x, mask=uneven)
    with pytest.raises(ValueError, match="not both"):
        model(x, mask=torch.arange(16).repeat(2, 1) >= 4, noise=torch.rand(2, 16))
    with pytest.raises(ValueError, match="noise must have shape"):
        model(x, noise=torch.rand(2, 17))
    with pytest.raises(ValueError, match="finite"):
        model(x, noise=torch.full((2, 16), math.nan))
    for ratio in (1.0, -0.1):
        with pytest.raises(ValueError, match="mask"):
            model(x, mask_ratio=ratio)
    with pytest.raises(ValueError, match="multiple of the patch size"):
        model(torch.randn(2, 3, 30, 30))
    with pytest.raises(ValueError):
        model(torch.randn(2, 1, 32, 32))
    with pytest.raises(ValueError, match="predicted_losses"):
        model.generate_mask(torch.randn(16))


@pytest.mark.parametrize("field, value, message", [
    ("hard_patch_ratio", 1.5, "hard_patch_ratio"), ("ema_decay", 2.0, "ema_decay"),
    ("loss_predictor_num_hidden_layers", 0, "loss_predictor_num_hidden_layers"),
    ("ema_decay_warmup", -1.0, "ema_decay_warmup"), ("mask_ratio", 1.0, "mask_ratio"),
])
def test_config_validation(field, value, message):
    with pytest.raises(StrictDataclassClassValidationError, match=message):  # wraps the ValueError
        tiny(**{field: value})


def test_convert_script_round_trip_and_bad_files(model, tmp_path):
    import importlib.util
    from pathlib import Path

    from transformers import AutoModel, AutoModelForPreTraining

    script = Path(__file__).parents[3] / "conversion" / "convert_hpm.py"
    spec = importlib.util.spec_from_file_location("convert_hpm", script)
    convert_hpm = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(convert_hpm)
    official = _official_like(model)
    path = tmp_path / "ckpt.pth"
    torch.save({"state_dict": official, "ema_state_dict": {k[len("module."):]: v * 2 for k, v in official.items()}},
               path)
    config_path = tmp_path / "config.json"
    model.config.to_json_file(config_path)
    assert convert_hpm.main(["--checkpoint", str(path), "--config", str(config_path),
                             "--output", str(tmp_path / "out")]) == 0
    reloaded = AutoModelForPreTraining.from_pretrained(tmp_path / "out")
    torch.testing.assert_close(reloaded.teacher.vit.layernorm.weight, model.vit.layernorm.weight * 2)
    encoder = AutoModel.from_pretrained(tmp_path / "out")
    torch.testing.assert_close(encoder.layernorm.weight, model.vit.layernorm.weight)
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(path.read_bytes()[:100])
    assert convert_hpm.main(["--checkpoint", str(truncated), "--output", str(tmp_path / "bad")]) == 1
    assert not (tmp_path / "bad").exists()


def test_relative_objective_freezes_only_the_shift_of_the_scores():
    relative = HpmForPreTraining(tiny())
    assert not relative.loss_predictor.pred.bias.requires_grad and relative.loss_predictor.pred.weight.requires_grad
    assert HpmForPreTraining(tiny(relative_loss=False)).loss_predictor.pred.bias.requires_grad
    scores, target = torch.randn(2, 12, requires_grad=True), torch.rand(2, 12)
    relative_loss_prediction_loss(scores, target).backward()
    assert scores.grad.sum(dim=1).abs().max() < 1e-6  # a common shift of the scores gets no gradient


def test_other_input_sizes_with_interpolation(model):
    out = model(pixels()[:, :, :24, :24].repeat(1, 1, 2, 2), interpolate_pos_encoding=True)  # 48 px: 6x6 patches
    assert out.logits.shape == (2, 36, 192) and out.mask.sum(1).tolist() == [27.0, 27.0]
    with pytest.raises(ValueError, match="interpolate_pos_encoding"):
        model(torch.randn(2, 3, 48, 48))
