"""MAE pre-training behaviour: the loss is on masked patches only, the encoder sees only visible patches and reloads
through AutoModel / VitForImageClassification after pre-training, the variants, and clear errors on bad input."""

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import AutoModel, AutoModelForImageClassification, AutoModelForPreTraining

import hf_vision_zoo
from hf_vision_zoo.models.mae import MaeConfig, MaeForImageClassification, MaeForPreTraining, MaeModel
from hf_vision_zoo.models.vit import VitForImageClassification, VitModel

TINY = dict(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
            decoder_hidden_size=16, decoder_num_hidden_layers=1, decoder_num_attention_heads=2)


def tiny_mae(seed: int = 0, **overrides) -> MaeForPreTraining:
    torch.manual_seed(seed)
    return MaeForPreTraining(MaeConfig(**{**TINY, **overrides})).eval()


def pixels(batch: int = 2, size: int = 32, seed: int = 1) -> torch.Tensor:
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


def test_loss_is_mse_on_masked_patches_only():
    for norm_pix_loss in (False, True):
        model = tiny_mae(norm_pix_loss=norm_pix_loss)
        x = pixels()
        noise = torch.rand(2, 16, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            out = model(x, noise=noise)
        target = model.patchify(x)
        if norm_pix_loss:
            target = (target - target.mean(-1, keepdim=True)) / (target.var(-1, keepdim=True) + 1e-6).sqrt()
        per_patch = (out.logits - target).pow(2).mean(-1)
        masked = out.mask.bool()
        torch.testing.assert_close(out.loss, per_patch[masked].mean())
        # predictions on visible patches do not count
        changed = out.logits.masked_fill(~masked.unsqueeze(-1), 123.0)
        torch.testing.assert_close(model.forward_loss(x, changed, out.mask), out.loss)
    assert torch.equal(model.unpatchify(model.patchify(x)), x)


def test_encoder_sees_only_visible_patches_and_decoder_all():
    model = tiny_mae()
    x = pixels()
    with torch.no_grad():
        out = model(x, noise=torch.rand(2, 16), output_hidden_states=True)
    assert all(h.shape == (2, 1 + 4, 32) for h in out.hidden_states)
    assert out.logits.shape == (2, 16, 8 * 8 * 3)


def test_pretraining_cost_falls_with_the_mask_ratio():
    """FLOPs of one forward at 224 px; encoder 3 x 192 wide and decoder 2 x 128 wide have the per-token cost ratio
    of MAE-B (12 x 768 vs 8 x 512, about 0.3), at a sixteenth of its cost."""
    torch.manual_seed(0)
    model = MaeForPreTraining(MaeConfig(hidden_size=192, num_attention_heads=3, num_hidden_layers=3,
                                        decoder_hidden_size=128, decoder_num_attention_heads=4,
                                        decoder_num_hidden_layers=2)).eval()
    x = pixels(1, 224)
    costs = {}
    for ratio in (0.0, 0.5, 0.75, 0.9):
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(x, mask_ratio=ratio)
        costs[ratio] = counter.get_total_flops()
    assert costs[0.0] > costs[0.5] > costs[0.75] > costs[0.9]
    assert costs[0.75] < 0.5 * costs[0.0], costs


def test_mask_ratio_zero_gives_a_finite_loss_over_all_patches():
    model = tiny_mae()
    out = model(pixels(), mask_ratio=0.0)
    assert out.mask.sum() == 0 and torch.isfinite(out.loss)
    out.loss.backward()
    assert model.decoder.pred.weight.grad.abs().sum() > 0


def test_explicit_mask():
    model = tiny_mae()
    mask = torch.zeros(2, 16, dtype=torch.bool)
    mask[0, :8], mask[1, 8:] = True, True
    with torch.no_grad():
        out = model(pixels(), mask=mask)
    assert torch.equal(out.mask, mask.float())


def test_training_step_updates_encoder_and_decoder():
    model = tiny_mae().train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    loss = model(pixels(4)).loss
    loss.backward()
    optimizer.step()
    unchanged = [n for n, p in model.named_parameters() if torch.equal(before[n], p)]
    assert not unchanged, unchanged
    assert "position_embeddings" not in dict(model.named_parameters()), "the sin-cos tables are fixed buffers"


def test_encoder_reloads_after_pretraining(tmp_path):
    model = tiny_mae()
    model.save_pretrained(tmp_path)
    x = pixels()
    with torch.no_grad():
        expected = model.vit(x).last_hidden_state

    again = AutoModelForPreTraining.from_pretrained(tmp_path).eval()
    assert type(again) is MaeForPreTraining
    noise = torch.rand(2, 16)
    with torch.no_grad():
        torch.testing.assert_close(again(x, noise=noise).loss, model(x, noise=noise).loss, atol=0, rtol=0)

    encoder, info = AutoModel.from_pretrained(tmp_path, output_loading_info=True)
    assert type(encoder) is MaeModel and isinstance(encoder, VitModel)
    assert not info["missing_keys"] and all(k.startswith("decoder.") for k in info["unexpected_keys"])
    with torch.no_grad():
        torch.testing.assert_close(encoder.eval()(x).last_hidden_state, expected, atol=0, rtol=0)

    # fine-tuning recipe: mean pooling + fc_norm, learnable positions starting from the sin-cos table
    classifier, info = AutoModelForImageClassification.from_pretrained(
        tmp_path, num_labels=3, pooling="mean", position_embedding_type="learned", output_loading_info=True)
    assert type(classifier) is MaeForImageClassification and isinstance(classifier, VitForImageClassification)
    assert sorted(info["missing_keys"]) == ["classifier.bias", "classifier.weight", "vit.fc_norm.bias",
                                            "vit.fc_norm.weight"]
    positions = classifier.vit.embeddings.position_embeddings
    assert isinstance(positions, torch.nn.Parameter) and positions.requires_grad
    torch.testing.assert_close(positions, model.vit.embeddings.position_embeddings)
    # linear probing keeps the [CLS] features of the pre-trained encoder
    probe = VitForImageClassification.from_pretrained(tmp_path, num_labels=3).eval()
    with torch.no_grad():
        torch.testing.assert_close(probe.vit(x).last_hidden_state, expected, atol=0, rtol=0)


@pytest.mark.parametrize("ratio", [-0.5, 1.0, 2.0])
def test_bad_mask_ratio(ratio):
    with pytest.raises(ValueError, match="mask_ratio"):
        tiny_mae()(pixels(), mask_ratio=ratio)
    with pytest.raises(Exception, match="mask_ratio"):  # strict configs wrap the ValueError
        MaeConfig(**TINY, mask_ratio=ratio)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"noise": torch.rand(2, 17)}, r"noise must have shape \(2, 16\)"),
    ({"noise": torch.rand(1, 16)}, r"noise must have shape \(2, 16\)"),
    ({"mask": torch.zeros(2, 4, 4, dtype=torch.bool)}, r"mask must have shape \(2, 16\)"),
    ({"mask": torch.zeros(2, 16, dtype=torch.bool), "noise": torch.rand(2, 16)}, "not both"),
])
def test_bad_noise_or_mask(kwargs, message):
    with pytest.raises(ValueError, match=message):
        tiny_mae()(pixels(), **kwargs)


def test_bad_image_sizes():
    model = tiny_mae()
    with pytest.raises(ValueError, match="interpolate_pos_encoding"):
        model(pixels(size=40))
    with pytest.raises(ValueError, match="multiple of the patch size"):
        model(pixels(size=36), interpolate_pos_encoding=True)
    out = model(pixels(size=40), interpolate_pos_encoding=True)  # a 5x5 grid: decoder table recomputed
    assert out.logits.shape == (2, 25, 192) and torch.isfinite(out.loss)


def test_bad_configs():
    with pytest.raises(Exception, match="decoder_num_attention_heads"):
        MaeConfig(**{**TINY, "decoder_num_attention_heads": 3})
    with pytest.raises(ValueError, match="pooling='cls'"):
        MaeForPreTraining(MaeConfig(**{**TINY, "pooling": "mean"}))


def test_variants():
    names = hf_vision_zoo.list_models("mae_*")
    assert {"mae_vit_base_patch16_dec512d8b.in1k", "mae_vit_large_patch16_dec512d8b.in1k",
            "mae_vit_huge_patch14_dec512d8b.in1k", "mae_vit_base_patch16_dec512d8b.in1k_visualize"} <= set(names)
    config = hf_vision_zoo.get_config("mae_vit_base_patch16_dec512d8b.in1k")
    assert config.norm_pix_loss and config.mask_ratio == 0.75 and config.position_embedding_type == "sincos"
    with torch.device("meta"):
        model = MaeForPreTraining(config)
    # the official mae_vit_base_patch16_dec512d8b: 111,907,840 parameters incl. the two fixed tables
    buffers = sum(b.numel() for name, b in model.named_buffers() if name.endswith("position_embeddings"))
    assert sum(p.numel() for p in model.parameters()) + buffers == 111_907_840
