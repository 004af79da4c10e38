"""GMML model behaviour beyond the common testers: the official parameter counts of the registered backbones, the
forward with generated vs explicit corruption (reproducible under a generator), every token encoded, the loss
restricted to the corrupted pixels, the multi-block feature average, other input sizes, encoder reuse, and bad
input (config and forward)."""

import pytest
import torch
from huggingface_hub.errors import StrictDataclassClassValidationError
from transformers import AutoModel, AutoModelForImageClassification, AutoModelForPreTraining

from hf_vision_zoo import registry
from hf_vision_zoo.models.gmml import GmmlConfig, GmmlForImageClassification, GmmlForPreTraining, GmmlModel

TINY = dict(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=3, num_attention_heads=2,
            recons_blocks=[1, 3], num_labels=5)


def tiny(**overrides):
    torch.manual_seed(0)
    return GmmlForPreTraining(GmmlConfig(**{**TINY, **overrides})).eval()


def images(batch=2, size=32):
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("size,backbone,head", [("tiny", 5_524_416, 258_627), ("small", 21_665_664, 738_435)])
def test_official_parameter_counts(size, backbone, head):
    """The official vit_tiny / vit_small + RECHead sizes (catalog, counted on the official code)."""
    config = registry.get_config(f"gmml_vit_{size}_patch16_224")
    with torch.device("meta"):
        model = GmmlForPreTraining(config)
    assert sum(p.numel() for p in model.vit.parameters()) == backbone
    assert sum(p.numel() for p in model.head.parameters()) == head
    assert config.recons_blocks == [6, 8, 10, 12] and config.drop_perc == 0.75 and config.drop_replace == 0.3
    assert config.drop_type == "noise" and config.drop_align == 1 and config.drop_path_rate == 0.1


def test_generated_corruption_is_reproducible_and_replayable():
    model, x = tiny(), images()
    with torch.no_grad():
        a = model(x, generator=torch.Generator().manual_seed(3))
        b = model(x, generator=torch.Generator().manual_seed(3))
        c = model(x, generator=torch.Generator().manual_seed(4))
        replay = model(x, corrupted_pixel_values=a.corrupted_pixel_values, mask=a.mask)
    assert torch.equal(a.loss, b.loss) and torch.equal(a.mask, b.mask) and not torch.equal(a.mask, c.mask)
    torch.testing.assert_close(replay.loss, a.loss, rtol=0, atol=0)
    assert a.mask.shape == (2, 32, 32) and a.mask.dtype == torch.bool and a.reconstruction.shape == x.shape


def test_every_token_is_encoded_and_features_average_the_chosen_blocks():
    model, x = tiny(), images()
    with torch.no_grad():
        features, outputs = model.encode(x)
        hidden = outputs.hidden_states
        expected = model.vit.layernorm((hidden[1] + hidden[3]) / 2)[:, 1:]
        only_last = tiny(recons_blocks=[3]).encode(x)[0]
    assert outputs.last_hidden_state.shape == (2, 1 + 16, 32) and outputs.mask is None
    torch.testing.assert_close(features, expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(only_last, outputs.last_hidden_state[:, 1:], rtol=0, atol=1e-6)
    assert not torch.allclose(features, only_last)


def test_loss_covers_only_corrupted_pixels():
    model, x = tiny(), images()
    mask = torch.zeros(2, 32, 32, dtype=torch.bool)
    mask[:, 8:20, 4:30] = True
    reconstruction = torch.randn_like(x)
    loss = model.forward_loss(x, reconstruction, mask)
    changed_outside = reconstruction.clone()
    changed_outside[:, :, 0:8] += 5.0
    assert torch.equal(model.forward_loss(x, changed_outside, mask), loss)
    changed_inside = reconstruction.clone()
    changed_inside[:, :, 10, 10] += 5.0
    assert model.forward_loss(x, changed_inside, mask) > loss
    expected = (reconstruction - x).abs().permute(1, 0, 2, 3)[:, mask].mean()
    torch.testing.assert_close(loss, expected)
    all_pixels = tiny(drop_only=False).forward_loss(x, reconstruction, mask)
    torch.testing.assert_close(all_pixels, (reconstruction - x).abs().mean())
    # nothing corrupted: the mean over every pixel (the official mean of an empty selection is NaN)
    torch.testing.assert_close(model.forward_loss(x, reconstruction, torch.zeros_like(mask)), all_pixels)


def test_other_input_size_and_training_step():
    model, x = tiny(), images(size=48)
    with pytest.raises(ValueError, match="interpolate_pos_encoding"):
        model(x)
    out = model(x, interpolate_pos_encoding=True, generator=torch.Generator().manual_seed(0))
    assert out.reconstruction.shape == x.shape and torch.isfinite(out.loss)
    model.train()
    model(images(), generator=torch.Generator().manual_seed(0)).loss.backward()
    assert model.head.conv_transpose.weight.grad.abs().sum() > 0


def test_encoder_reloads_for_features_and_classification(tmp_path):
    model = tiny()
    model.save_pretrained(tmp_path)
    assert isinstance(AutoModelForPreTraining.from_pretrained(tmp_path), GmmlForPreTraining)
    encoder = AutoModel.from_pretrained(tmp_path)
    assert isinstance(encoder, GmmlModel)
    torch.testing.assert_close(encoder.blocks[0].attn.qkv.weight, model.vit.blocks[0].attn.qkv.weight)
    classifier = AutoModelForImageClassification.from_pretrained(tmp_path, num_labels=3)
    assert isinstance(classifier, GmmlForImageClassification)
    assert classifier(images()).logits.shape == (2, 3)


def test_bad_forward_input():
    model, x = tiny(), images()
    corrupted, mask = x.clone(), torch.zeros(2, 32, 32, dtype=torch.bool)
    with pytest.raises(ValueError, match="both"):
        model(x, corrupted_pixel_values=corrupted)
    with pytest.raises(ValueError, match="both"):
        model(x, mask=mask)
    with pytest.raises(ValueError, match="shape"):
        model(x, corrupted_pixel_values=corrupted, mask=torch.zeros(2, 31, 32, dtype=torch.bool))
    with pytest.raises(ValueError, match="shape"):
        model(x, corrupted_pixel_values=corrupted, mask=torch.zeros(2, 15, dtype=torch.bool))
    with pytest.raises(TypeError, match="bool"):
        model(x, corrupted_pixel_values=corrupted, mask=mask.float())
    with pytest.raises(ValueError, match="shape of pixel_values"):
        model(x, corrupted_pixel_values=corrupted[:1], mask=mask)
    with pytest.raises(ValueError, match="NaN|infinite"):
        model(x, corrupted_pixel_values=torch.full_like(x, float("nan")), mask=mask)
    with pytest.raises(ValueError, match="generator"):
        model(x, corrupted_pixel_values=corrupted, mask=mask, generator=torch.Generator())
    with pytest.raises(ValueError, match="multiple of the patch"):
        model(torch.randn(2, 3, 36, 36), interpolate_pos_encoding=True)
    with pytest.raises(ValueError, match="channels"):
        model(x[:, :1])


@pytest.mark.parametrize("overrides,message", [
    (dict(recons_blocks=[1, 4]), "recons_blocks"),
    (dict(recons_blocks=[]), "recons_blocks"),
    (dict(recons_blocks=[2, 2]), "recons_blocks"),
    (dict(recons_blocks="1-x"), "recons_blocks"),
    (dict(drop_type="noise-blur"), "drop_type"),
    (dict(drop_perc=1.0), "drop_perc"),
    (dict(drop_replace=-0.1), "drop_replace"),
    (dict(drop_align=16), "too small"),
    (dict(drop_align=8), "never stop"),
])
def test_bad_config(overrides, message):
    with pytest.raises((ValueError, StrictDataclassClassValidationError), match=message):
        GmmlConfig(**{**TINY, **overrides})


def test_pretraining_needs_the_final_norm():
    with pytest.raises(ValueError, match="final norm"):
        GmmlForPreTraining(GmmlConfig(**{**TINY, "pooling": "mean"}))
    assert GmmlConfig(**{**TINY, "recons_blocks": "1-2-3"}).recons_blocks == [1, 2, 3]
