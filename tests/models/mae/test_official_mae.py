"""Parity with the OFFICIAL MAE code (facebookresearch/mae at efb2a80) through stored fixtures: the pre-training
model (loss with norm_pix_loss off and on, reconstruction, mask, sin-cos tables) and a fine-tuned global-pool ViT.
The fixtures and their recipe come from tests/fixtures/make_mae_official_fixture.py."""

import json
from pathlib import Path

import torch
from safetensors.torch import load_file

from hf_vision_zoo.conversion import convert_to_model
from hf_vision_zoo.conversion import mae as mae_conversion
from hf_vision_zoo.conversion import vit as vit_conversion
from hf_vision_zoo.models.mae import MaeForPreTraining, MaeModel

FIXTURES = Path(__file__).parents[2] / "fixtures" / "mae_official"
ATOL = 1e-5


def load(name: str) -> tuple[dict, dict]:
    tensors = load_file(FIXTURES / f"{name}.safetensors")
    state = {k[len("state_dict."):]: v for k, v in tensors.items() if k.startswith("state_dict.")}
    return state, tensors


def test_recipe_is_recorded():
    recipe = json.loads((FIXTURES / "recipe.json").read_text())
    assert recipe["commit"].startswith("efb2a80") and recipe["pretrain"]["mask_ratio"] == 0.75


def test_pretraining_matches_official():
    state, tensors = load("pretrain")
    config = mae_conversion.infer_config(state, "official", num_attention_heads=2, decoder_num_attention_heads=2)
    assert (config.hidden_size, config.decoder_hidden_size, config.layer_norm_eps) == (32, 16, 1e-6)
    model = convert_to_model("mae", state, config, "official", task="pretraining")
    # the fixed sin-cos tables we build equal the official numpy ones
    fresh = MaeForPreTraining(config)
    torch.testing.assert_close(fresh.vit.embeddings.position_embeddings, state["pos_embed"], atol=1e-6, rtol=0)
    torch.testing.assert_close(fresh.decoder.position_embeddings, state["decoder_pos_embed"], atol=1e-6, rtol=0)
    x, noise = tensors["pixel_values"], tensors["noise"]
    for norm_pix_loss in (False, True):
        model.config.norm_pix_loss = norm_pix_loss
        with torch.no_grad():
            out = model(x, noise=noise, mask_ratio=0.75)
        torch.testing.assert_close(out.loss.reshape(1), tensors[f"loss_norm_pix_{norm_pix_loss}"], atol=ATOL, rtol=0)
        torch.testing.assert_close(out.logits, tensors["pred"], atol=ATOL, rtol=0)
        assert torch.equal(out.mask, tensors["mask"])


def test_pretraining_checkpoint_gives_encoder():
    """`--arch vit` (or the MAE encoder task) keeps the encoder of an official pre-training checkpoint."""
    state, tensors = load("pretrain")
    vit = convert_to_model("vit", state, vit_conversion.infer_config(state, "official", num_attention_heads=2),
                           "official", task="feature-extraction")
    encoder = convert_to_model("mae", state, mae_conversion.infer_config(state, "official", num_attention_heads=2,
                                                                         decoder_num_attention_heads=2),
                               "official", task="feature-extraction")
    assert isinstance(encoder, MaeModel)
    with torch.no_grad():
        torch.testing.assert_close(vit(tensors["pixel_values"]).last_hidden_state,
                                   encoder(tensors["pixel_values"]).last_hidden_state, atol=0, rtol=0)


def test_finetuned_global_pool_vit_matches_official():
    state, tensors = load("finetune")
    config = vit_conversion.infer_config(state, "official", num_attention_heads=2)
    assert config.pooling == "mean" and config.fc_norm and config.num_labels == 5
    model = convert_to_model("vit", state, config, "official")
    with torch.no_grad():
        torch.testing.assert_close(model(tensors["pixel_values"]).logits, tensors["logits"], atol=ATOL, rtol=0)
