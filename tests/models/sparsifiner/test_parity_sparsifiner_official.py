"""Parity of the zoo's Sparsifiner with the OFFICIAL code (lim142857/Sparsifiner @ 9a11e26), through stored fixtures
made by tests/fixtures/make_sparsifiner_official_fixture.py (random weights perturbed with std 0.1): logits, the
binary connectivity masks (exactly), the low-rank approximations, basis coefficients and attention maps, in eval
(both execution paths) and in the two training stages."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from hf_vision_zoo.conversion import convert_to_model
from hf_vision_zoo.conversion.sparsifiner import infer_config
from hf_vision_zoo.models.sparsifiner import SparsifinerConfig

FIXTURES = Path(__file__).parents[2] / "fixtures" / "sparsifiner_official"
RECIPE = json.loads((FIXTURES / "recipe.json").read_text())
ATOL = 1e-5


def _load(name: str):
    tensors = load_file(str(FIXTURES / RECIPE["fixtures"][name]["file"]))
    state = {k[len("state_dict."):]: v for k, v in tensors.items() if k.startswith("state_dict.")}
    return tensors, state


def _config(name: str, **overrides) -> SparsifinerConfig:
    spec = RECIPE["fixtures"][name]
    kwargs, cfg = spec["constructor_kwargs"], spec["cfg"]
    return SparsifinerConfig(
        image_size=list(spec["input_size"]), patch_size=kwargs["patch_size"], hidden_size=kwargs["embed_dim"],
        num_hidden_layers=kwargs["depth"], num_attention_heads=kwargs["num_heads"], mlp_ratio=kwargs["mlp_ratio"],
        qkv_bias=kwargs["qkv_bias"], num_labels=kwargs["num_classes"], attn_keep_rate=kwargs["attn_keep_rate_list"],
        reduce_n_factor=kwargs["reduce_n_factor"], reduce_c_factor=kwargs["reduce_c_factor"],
        share_inout_proj=kwargs["share_inout_proj"], basis_threshold=cfg["BASIS_THRESHOLD"],
        basis_coef_topk=cfg["BASIS_COEF_TOPK"] if cfg["BASIS_COEF_USE_TOPK"] else None,
        basis_coef_threshold=cfg["BASIS_COEF_THRESHOLD"], **overrides)


def _model(name: str, **overrides):
    tensors, state = _load(name)
    return convert_to_model("sparsifiner", state, _config(name, **overrides), "official"), tensors


@pytest.mark.parametrize("name", sorted(RECIPE["fixtures"]))
@pytest.mark.parametrize("path", ["sparse", "masked"])
def test_eval_matches_official(name, path):
    model, ref = _model(name, attention_path=path)
    depth = model.config.num_hidden_layers
    with torch.no_grad():
        out = model(ref["pixel_values"], output_connectivity=True, output_attentions=True)
        features = model.vit(ref["pixel_values"]).last_hidden_state[:, 1:]
    torch.testing.assert_close(out.logits, ref["logits"], atol=ATOL, rtol=0)
    torch.testing.assert_close(features, ref["features"], atol=ATOL, rtol=0)
    for i in range(depth):
        assert torch.equal(out.connectivity_masks[i], ref[f"attn_mask.{i}"].bool()), f"block {i}: masks differ"
        torch.testing.assert_close(out.approximate_attentions[i], ref[f"approx_attn.{i}"], atol=ATOL, rtol=0)
        torch.testing.assert_close(out.basis_coefficients[i], ref[f"basis_coef.{i}"], atol=ATOL, rtol=0)
        torch.testing.assert_close(out.attentions[i], ref[f"masked_attn.{i}"], atol=ATOL, rtol=0)
    torch.testing.assert_close(out.attention_sparsity, ref["attn_mask_sparsity"][0], atol=1e-6, rtol=0)


@pytest.mark.parametrize("name", sorted(RECIPE["fixtures"]))
def test_training_stages_match_official(name):
    # stage 1 (LOSS.USE_ATTN_RECON): dense attention, raw low-rank approximation
    model, ref = _model(name, attention_reconstruction=True)
    model.train()
    with torch.no_grad():
        out = model(ref["pixel_values"], output_connectivity=True)
    torch.testing.assert_close(out.logits, ref["recon.logits"], atol=ATOL, rtol=0)
    for i, approx in enumerate(out.approximate_attentions):
        torch.testing.assert_close(approx, ref[f"recon.approx_attn.{i}"], atol=ATOL, rtol=0)
    assert out.attention_distillation_loss is None
    # later stages: masked sparse attention + the attention self-distillation loss
    model, ref = _model(name)
    model.train()
    with torch.no_grad():
        out = model(ref["pixel_values"])
    torch.testing.assert_close(out.logits, ref["train.logits"], atol=ATOL, rtol=0)
    torch.testing.assert_close(out.attention_distillation_loss, ref["train.attn_self_distill_loss"][0], atol=1e-4,
                               rtol=1e-5)


def test_infer_config_reads_predictor_sizes():
    _, state = _load("default_topk")
    config = infer_config(state, "official", num_attention_heads=2, basis_coef_topk=2)
    spec = RECIPE["fixtures"]["default_topk"]["constructor_kwargs"]
    assert (config.hidden_size, config.num_hidden_layers, config.image_size, config.patch_size) == (32, 2, 32, 8)
    assert config.num_tokens // config.reduce_n_factor == state["blocks.0.attn.mask_predictor.proj_n"].shape[1]
    assert config.channel_rank == state["blocks.0.attn.mask_predictor.proj_c_q.weight"].shape[0]
    assert config.share_inout_proj is spec["share_inout_proj"] and config.num_labels == 5
    _, shared = _load("threshold_shared")
    from hf_vision_zoo.conversion.sparsifiner import convert_state_dict
    converted = convert_state_dict(shared, _config("threshold_shared"), "official")
    assert not any(k.endswith("proj_back_n") for k in converted)  # the shared table is kept once
