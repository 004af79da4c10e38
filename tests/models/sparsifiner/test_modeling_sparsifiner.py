"""Properties of the zoo's Sparsifiner: the real sparse path equals the official dense masked path, every patch
query attends to exactly k keys, keep rate 1 is the dense ViT / timm DeiT with the same weights, attention FLOPs
scale with k, training losses reach the predictor, conversion from DeiT, and bad configs/inputs fail clearly."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import hf_vision_zoo  # noqa: F401
from hf_vision_zoo.conversion import convert_to_model
from hf_vision_zoo.layers.sparse_attention import gather_rows, topk_sparse_attention, use_kernel
from hf_vision_zoo.models.sparsifiner import (
    SparsifinerConfig,
    SparsifinerForImageClassification,
    SparsifinerModel,
    attention_reconstruction_loss,
    distillation_loss,
)
from hf_vision_zoo.models.vit import VitConfig, VitForImageClassification

REPO = Path(__file__).parents[3]
SMALL = dict(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, num_labels=5,
             reduce_n_factor=4, basis_coef_topk=2)
VIT_SMALL = {k: v for k, v in SMALL.items() if k not in ("reduce_n_factor", "basis_coef_topk")}


def _perturbed(model, seed=0):
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model.eval()


def _photos(photos, size, n=2):
    from PIL import Image

    arrays = [np.asarray(p.resize((size[1], size[0]), Image.BICUBIC), dtype=np.float32) / 255 for p in
              list(photos.values())[:n]]
    x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)
    return (x - 0.45) / 0.25


CONFIGS = {
    "small": SMALL,
    "per_layer_rates_nonsquare": dict(image_size=[32, 48], patch_size=8, hidden_size=48, num_hidden_layers=3,
                                      num_attention_heads=3, num_labels=4, attn_keep_rate=[0.1, 0.5, 0.3],
                                      reduce_n_factor=5, reduce_c_factor=4, basis_coef_topk=None,
                                      basis_coef_threshold=0.1, share_inout_proj=True, qkv_bias=False),
    "explicit_budget": dict(SMALL, image_size=48, attention_budget=[1, 7], layer_scale_init_value=0.5),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_sparse_path_equals_masked_path(name, photos):
    model = _perturbed(SparsifinerForImageClassification(SparsifinerConfig(**CONFIGS[name], attention_path="sparse")))
    config = model.config
    x = _photos(photos, config.image_size_2d)
    with torch.no_grad():
        sparse = model(x, output_connectivity=True, output_attentions=True, output_hidden_states=True)
        config.attention_path = "masked"
        masked = model(x, output_connectivity=True, output_attentions=True, output_hidden_states=True)
        masked_sdpa = model(x)
    torch.testing.assert_close(sparse.logits, masked.logits, atol=1e-5, rtol=0)
    torch.testing.assert_close(sparse.logits, masked_sdpa.logits, atol=1e-5, rtol=0)
    for a, b in zip(sparse.hidden_states, masked.hidden_states):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    for i in range(config.num_hidden_layers):
        assert torch.equal(sparse.connectivity_masks[i], masked.connectivity_masks[i])
        torch.testing.assert_close(sparse.approximate_attentions[i], masked.approximate_attentions[i], atol=1e-6,
                                   rtol=0)
        torch.testing.assert_close(sparse.basis_coefficients[i], masked.basis_coefficients[i], atol=1e-6, rtol=0)
        torch.testing.assert_close(sparse.attentions[i], masked.attentions[i], atol=1e-6, rtol=0)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_each_patch_query_attends_to_exactly_k_keys(name, photos):
    model = _perturbed(SparsifinerModel(SparsifinerConfig(**CONFIGS[name])))
    config = model.config
    x = _photos(photos, config.image_size_2d)
    with torch.no_grad():
        out = model(x, output_connectivity=True, output_attentions=True)
    tokens = config.num_tokens
    kept = 0
    for i in range(config.num_hidden_layers):
        k = config.budget(i)
        indices, mask, attention = out.key_indices[i], out.connectivity_masks[i], out.attentions[i]
        assert indices.shape == (2, config.num_attention_heads, tokens - 1, k)
        assert (indices.sort(-1).values.diff(dim=-1) > 0).all(), "a key is selected twice"
        assert (mask[:, :, 0].all()) and (mask[:, :, 1:].sum(-1) == k).all()
        assert ((attention[:, :, 1:] > 0).sum(-1) <= k).all() and (attention[:, :, 1:][~mask[:, :, 1:]] == 0).all()
        torch.testing.assert_close(attention.sum(-1), torch.ones_like(attention.sum(-1)))
        kept += tokens + (tokens - 1) * k
    expected = 1 - kept / (config.num_hidden_layers * tokens**2)
    torch.testing.assert_close(out.attention_sparsity, torch.tensor(expected))
    if name == "explicit_budget":
        assert config.budget(0) == 1 and config.budget(1) == 7
    if name == "small":
        assert config.budget(0) == 5  # official attn_budget = ceil(0.25 * 17)


def test_full_budget_equals_dense_vit_and_timm_deit():
    """keep rate 1 (k = N): Sparsifiner is the plain ViT with the same weights, whatever the predictor says; a timm
    DeiT converted with --source deit gives the same logits."""
    import timm

    torch.manual_seed(0)
    deit = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=8, embed_dim=32,
                             depth=2, num_heads=2, num_classes=5).eval()
    _perturbed(deit, seed=1)
    config = SparsifinerConfig(**SMALL, attn_keep_rate=1.0)
    model = convert_to_model("sparsifiner", deit.state_dict(), config, "deit")
    vit = convert_to_model("vit", deit.state_dict(), VitConfig(**VIT_SMALL), "timm")
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        reference = deit(x)
        torch.testing.assert_close(vit(x).logits, reference, atol=1e-5, rtol=0)
        for path in ("sparse", "masked"):
            model.config.attention_path = path
            torch.testing.assert_close(model(x).logits, reference, atol=1e-5, rtol=0)
    # and with a keep rate < 1 the output really changes
    sparse = convert_to_model("sparsifiner", deit.state_dict(), SparsifinerConfig(**SMALL), "deit")
    with torch.no_grad():
        assert (sparse(x).logits - reference).abs().max() > 1e-3


def test_sparse_attention_flops_scale_with_k():
    """Attention FLOPs of the sparse path grow with k, not N: with N = 257 tokens, k = 16 costs far less than the
    masked (dense) path, and the sparse layer itself equals masked dense attention."""
    config = SparsifinerConfig(image_size=64, patch_size=4, hidden_size=64, num_hidden_layers=1,
                               num_attention_heads=2, attention_budget=16, reduce_n_factor=8, num_labels=0)
    model = SparsifinerModel(config).eval()
    model.set_attn_implementation("eager")  # fused SDPA kernels are not counted by FlopCounterMode
    x = torch.randn(1, 3, 64, 64)

    def attention_flops(path):  # the attention block minus its qkv/output projections (predictor included)
        model.config.attention_path = path
        # the counter sizes CSR products as dense ones: count the gather kernels, which do the same arithmetic
        with FlopCounterMode(display=False) as counter, torch.no_grad(), use_kernel("gather"):
            model(x)
        counts = {name: sum(c.values()) for name, c in counter.get_flop_counts().items()}
        attn = "SparsifinerModel.blocks.0.attn"
        return counts[attn] - counts[attn + ".qkv"] - counts[attn + ".proj"]

    sparse, masked = attention_flops("sparse"), attention_flops("masked")
    assert 0 < sparse < 0.25 * masked, (sparse, masked)
    # the gathered kernel against an explicit masked softmax
    q, k, v = torch.randn(3, 2, 2, 9, 8).unbind(0)
    idx = torch.randn(2, 2, 9, 9).topk(4, dim=-1).indices
    scores = (q @ k.transpose(-1, -2) * 0.3).masked_fill(
        ~torch.zeros(2, 2, 9, 9, dtype=torch.bool).scatter(-1, idx, True), float("-inf"))
    for kernel in ("gather", "csr"):
        out, probs = topk_sparse_attention(q, k, v, idx, 0.3, kernel=kernel)
        torch.testing.assert_close(out, scores.softmax(-1) @ v)
    assert torch.equal(gather_rows(k, idx)[0, 1, 3, 2], k[0, 1, idx[0, 1, 3, 2]])


def test_training_losses_reach_the_predictor():
    model = _perturbed(SparsifinerForImageClassification(SparsifinerConfig(**SMALL))).train()
    x, labels = torch.randn(2, 3, 32, 32), torch.tensor([1, 3])
    out = model(x, labels=labels)
    plain = torch.nn.functional.cross_entropy(out.logits, labels)
    torch.testing.assert_close(out.loss, plain + 0.002 * out.attention_distillation_loss)
    out.loss.backward()
    grad = model.vit.blocks[0].attn.mask_predictor.proj_c_q.weight.grad
    assert grad is not None and grad.abs().sum() > 0
    # stage 1: reconstruction of a dense teacher's attention maps
    model.zero_grad()
    model.config.attention_reconstruction = True
    teacher = VitForImageClassification(VitConfig(**VIT_SMALL)).eval()
    with torch.no_grad():
        teacher_out = teacher(x, output_attentions=True)
    out = model(x, output_connectivity=True)
    loss = attention_reconstruction_loss(out.approximate_attentions, teacher_out.attentions)
    loss.backward()
    assert model.vit.blocks[1].attn.mask_predictor.proj_back_n.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="teacher"):
        attention_reconstruction_loss(out.approximate_attentions[:1], teacher_out.attentions)
    total = distillation_loss(out.logits, teacher_out.logits, torch.zeros(2, 16, 32), torch.ones(2, 16, 32))
    assert total > 0.5 * 1.0 - 1e-6
    model.eval()
    assert model(x).attention_distillation_loss is None


def test_other_input_sizes_resample_the_predictor():
    model = _perturbed(SparsifinerModel(SparsifinerConfig(**SMALL)))
    with torch.no_grad():
        out = model(torch.randn(1, 3, 48, 40), interpolate_pos_encoding=True, output_connectivity=True)
    assert out.key_indices[0].shape[-1] == 8  # ceil(0.25 * (6 * 5 + 1))
    with pytest.raises(ValueError, match="interpolate_pos_encoding"):
        model(torch.randn(1, 3, 48, 40))
    small = SparsifinerModel(SparsifinerConfig(**SMALL, attention_budget=17))
    with pytest.raises(ValueError, match="attention_budget 17 exceeds the 10 tokens"):
        small(torch.randn(1, 3, 24, 24), interpolate_pos_encoding=True)


@pytest.mark.parametrize("overrides, message", [
    (dict(attention_budget=18), r"attention_budget .* \[1, N=17\]"),
    (dict(attention_budget=0), r"attention_budget .* \[1, N=17\]"),
    (dict(attention_budget=[3]), "one per block"),
    (dict(attn_keep_rate=0.0), r"attn_keep_rate must lie in \(0, 1\]"),
    (dict(attn_keep_rate=1.5), r"attn_keep_rate must lie in \(0, 1\]"),
    (dict(reduce_c_factor=32), "channel rank"),
    (dict(reduce_n_factor=18), "token rank"),
    (dict(reduce_n_factor=0), "reduce_n_factor must be a positive int"),
    (dict(basis_coef_topk=5), "basis_coef_topk"),
    (dict(attention_path="fast"), "attention_path"),
    (dict(class_token=False, pooling="mean"), "class_token"),
])
def test_bad_configs_fail_clearly(overrides, message):
    with pytest.raises(Exception, match=message):
        SparsifinerConfig(**{**SMALL, **overrides})


def test_conversion_script_and_bad_checkpoints(tmp_path):
    from safetensors.torch import load_file

    from hf_vision_zoo.conversion.common import ConversionError

    fixture = REPO / "tests" / "fixtures" / "sparsifiner_official" / "default_topk.safetensors"
    state = {k[len("state_dict."):]: v for k, v in load_file(str(fixture)).items() if k.startswith("state_dict.")}
    checkpoint = tmp_path / "sparsifiner.pth"
    torch.save({"model": state}, checkpoint)
    config = SparsifinerConfig(**SMALL)
    config.save_pretrained(tmp_path / "cfg")
    result = subprocess.run([sys.executable, str(REPO / "conversion" / "convert_sparsifiner.py"), "--source",
                             "official", "--checkpoint", str(checkpoint), "--config",
                             str(tmp_path / "cfg" / "config.json"), "--output", str(tmp_path / "out")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "0 missing / 0 unexpected" in result.stdout
    from transformers import AutoModelForImageClassification

    loaded = AutoModelForImageClassification.from_pretrained(tmp_path / "out")
    assert isinstance(loaded, SparsifinerForImageClassification)
    with pytest.raises(ConversionError, match="not a Sparsifiner checkpoint"):
        convert_to_model("sparsifiner", {k: v for k, v in state.items() if "mask_predictor" not in k}, config,
                         "official")
    with pytest.raises(ConversionError, match="missing"):
        convert_to_model("sparsifiner", {k: v for k, v in state.items() if "proj_n" not in k}, config, "official")
    with pytest.raises(ConversionError, match="--source official"):
        convert_to_model("sparsifiner", state, config, "deit")
