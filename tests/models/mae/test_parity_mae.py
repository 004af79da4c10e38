"""The zoo's `MaeForPreTraining` equals transformers' `ViTMAEForPreTraining`: same weights (perturbed with std 0.1)
and the same noise give the same loss, mask, ids_restore and reconstruction logits (atol 1e-5), with norm_pix_loss
off and on, from v5 in-memory names, from a transformers save_pretrained folder, and from legacy (4.x) names."""

import pytest
import torch
from safetensors.torch import load_file
from transformers import ViTMAEConfig, ViTMAEForPreTraining

from hf_vision_zoo.conversion import convert_to_model
from hf_vision_zoo.conversion import mae as mae_conversion
from hf_vision_zoo.models.mae import MaeForPreTraining
from hf_vision_zoo.registry import create_image_processor

ATOL = 1e-5


def reference_model(norm_pix_loss: bool, seed: int = 0, **kwargs) -> ViTMAEForPreTraining:
    config = ViTMAEConfig(**{**dict(
        hidden_size=48, num_hidden_layers=2, num_attention_heads=3, intermediate_size=96, image_size=32,
        patch_size=8, decoder_hidden_size=32, decoder_num_hidden_layers=2, decoder_num_attention_heads=4,
        decoder_intermediate_size=64, norm_pix_loss=norm_pix_loss, mask_ratio=0.75), **kwargs})
    torch.manual_seed(seed)
    model = ViTMAEForPreTraining(config)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # includes the (frozen) sin-cos tables
        for param in model.parameters():
            param.add_(torch.randn(param.shape, generator=generator) * 0.1)
    return model.eval()


def legacy_names(state_dict: dict) -> dict:
    """transformers 4.x key names of a v5 ViTMAE state dict."""
    out = {}
    for key, value in state_dict.items():
        key = key.replace("vit.layers.", "vit.encoder.layer.")
        for new, old in (("attention.q_proj", "attention.attention.query"),
                         ("attention.k_proj", "attention.attention.key"),
                         ("attention.v_proj", "attention.attention.value"),
                         ("attention.o_proj", "attention.output.dense"),
                         ("mlp.fc1", "intermediate.dense"), ("mlp.fc2", "output.dense")):
            key = key.replace(new, old)
        out[key] = value
    return out


def convert(reference: ViTMAEForPreTraining, state: dict | None = None) -> MaeForPreTraining:
    config = mae_conversion.config_from_transformers(reference.config.to_dict())
    state = reference.state_dict() if state is None else state
    model = convert_to_model("mae", state, config, "transformers", task="pretraining")
    assert isinstance(model, MaeForPreTraining)
    return model


def images(photos, size: int = 32) -> torch.Tensor:
    processor = create_image_processor("mae", size={"height": size, "width": size}, do_center_crop=False)
    return processor([photos[n] for n in ("astronaut", "chelsea", "coffee")], return_tensors="pt").pixel_values


def assert_same_pretraining_output(got, expected) -> None:
    torch.testing.assert_close(got.loss, expected.loss, atol=ATOL, rtol=0)
    torch.testing.assert_close(got.logits, expected.logits, atol=ATOL, rtol=0)
    assert torch.equal(got.mask, expected.mask)
    assert torch.equal(got.ids_restore, expected.ids_restore)


@pytest.mark.parametrize("norm_pix_loss", [False, True], ids=["pixels", "norm_pix"])
def test_matches_transformers_vitmae(norm_pix_loss, photos):
    reference = reference_model(norm_pix_loss)
    model = convert(reference)
    assert model.config.norm_pix_loss == norm_pix_loss
    pixel_values = images(photos)
    noise = torch.rand(3, 16, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        expected = reference(pixel_values, noise=noise, output_hidden_states=True)
        got = model(pixel_values, noise=noise, output_hidden_states=True)
    assert_same_pretraining_output(got, expected)
    assert got.mask.sum().item() == 3 * 12
    # the encoder features of the visible tokens too
    with torch.no_grad():
        encoder_expected = reference.vit(pixel_values, noise=noise).last_hidden_state
        encoder_got = model.vit(pixel_values, noise=noise, mask_ratio=0.75).last_hidden_state
    torch.testing.assert_close(encoder_got, encoder_expected, atol=ATOL, rtol=0)
    # sanity: the comparison is sensitive (a different decoder changes the logits)
    with torch.no_grad():
        model.decoder.pred.bias.add_(1e-3)
        assert not torch.allclose(model(pixel_values, noise=noise).logits, expected.logits, atol=ATOL, rtol=0)


def test_gradients_match_transformers(photos):
    reference = reference_model(True).train()
    model = convert(reference).train()
    pixel_values = images(photos)
    noise = torch.rand(3, 16, generator=torch.Generator().manual_seed(6))
    reference(pixel_values, noise=noise).loss.backward()
    model(pixel_values, noise=noise).loss.backward()
    torch.testing.assert_close(model.decoder.pred.weight.grad, reference.decoder.decoder_pred.weight.grad,
                               atol=ATOL, rtol=1e-4)
    torch.testing.assert_close(model.vit.embeddings.patch_embed.proj.weight.grad,
                               reference.vit.embeddings.patch_embeddings.projection.weight.grad, atol=ATOL, rtol=1e-4)


@pytest.mark.parametrize("names", ["saved", "legacy"])
def test_matches_transformers_from_disk_and_legacy_names(names, photos, tmp_path):
    reference = reference_model(True, seed=1, layer_norm_eps=1e-6, qkv_bias=False)
    if names == "saved":
        reference.save_pretrained(tmp_path)
        state = load_file(tmp_path / "model.safetensors")
    else:
        state = legacy_names(reference.state_dict())
    model = convert(reference, state)
    pixel_values = images(photos)
    noise = torch.rand(3, 16, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        assert_same_pretraining_output(model(pixel_values, noise=noise), reference(pixel_values, noise=noise))


def test_infer_config_from_transformers_weights():
    reference = reference_model(False)
    config = mae_conversion.infer_config(reference.state_dict(), "transformers", num_attention_heads=3,
                                         decoder_num_attention_heads=4)
    assert (config.hidden_size, config.num_hidden_layers, config.decoder_hidden_size,
            config.decoder_num_hidden_layers, config.decoder_mlp_ratio, config.layer_norm_eps) == (48, 2, 32, 2, 2.0,
                                                                                                 1e-12)
    assert mae_conversion.default_task(reference.state_dict(), "transformers") == "pretraining"
