"""The speed-motivated code paths of the masked encoder / MAE (issue 5, part 9) give the same numbers as the plain
ones: the visible-only patch embedding (`layers.masking.gather_patches`), the one-gather decoder restore with prefix
tokens, the qkv split of `layers.SelfAttention`, and the two-pass normalised-pixel target."""

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from hf_vision_zoo.layers import SelfAttention
from hf_vision_zoo.layers.masking import gather_patches, gather_tokens, num_visible_tokens, restore_tokens
from hf_vision_zoo.models.mae import MaeConfig, MaeForPreTraining
from hf_vision_zoo.models.vit import VitConfig, VitModel

TINY = dict(image_size=32, patch_size=8, hidden_size=48, num_hidden_layers=2, num_attention_heads=3)


def perturbed(model):
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 0.1)
    return model.eval()


@pytest.mark.parametrize("size, patch, keep", [((32, 32), 8, 5), ((24, 40), (8, 4), 7), ((16, 16), 16, 1)])
def test_patch_strip_embeds_exactly_the_kept_patches(size, patch, keep):
    torch.manual_seed(0)
    patch_hw = (patch, patch) if isinstance(patch, int) else patch
    conv = torch.nn.Conv2d(3, 20, patch_hw, patch_hw)
    x = torch.randn(3, 3, *size)
    num_patches = (size[0] // patch_hw[0]) * (size[1] // patch_hw[1])
    ids_keep = torch.argsort(torch.rand(3, num_patches), dim=1)[:, :keep]
    strip = gather_patches(x, ids_keep, patch)
    assert strip.shape == (3, 3, patch_hw[0], keep * patch_hw[1])
    with torch.no_grad():
        expected = gather_tokens(conv(x).flatten(2).transpose(1, 2), ids_keep)
        got = conv(strip).flatten(2).transpose(1, 2)
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="not a multiple of the patch size"):
        gather_patches(x[..., :-1], ids_keep, patch)


def test_visible_only_embedding_computes_only_the_kept_patches():
    """Embedding cost scales with the kept patches; values equal embedding everything and gathering."""
    torch.manual_seed(0)
    model = perturbed(VitModel(VitConfig(**TINY)))
    x = torch.randn(2, 3, 32, 32)
    ids_keep = torch.argsort(torch.rand(2, 16), dim=1)[:, :4]
    with torch.no_grad():
        with FlopCounterMode(display=False) as full_count:
            prefix, tokens, _ = model.embeddings(x)
        with FlopCounterMode(display=False) as kept_count:
            prefix_kept, kept, grid = model.embeddings(x, ids_keep=ids_keep)
    assert kept_count.get_total_flops() * 4 == full_count.get_total_flops()
    assert grid == (4, 4)
    torch.testing.assert_close(prefix_kept, prefix, atol=0, rtol=0)
    torch.testing.assert_close(kept, gather_tokens(tokens, ids_keep), atol=1e-6, rtol=0)


def test_visible_only_embedding_with_mask_token_and_padded_sizes():
    torch.manual_seed(0)
    model = perturbed(VitModel(VitConfig(**TINY, use_mask_token=True)))
    x = torch.randn(2, 3, 32, 32)
    ids_keep = torch.argsort(torch.rand(2, 16), dim=1)[:, :6]
    bool_masked_pos = torch.rand(2, 16) < 0.5
    with torch.no_grad():
        _, tokens, _ = model.embeddings(x, bool_masked_pos)
        _, kept, _ = model.embeddings(x, bool_masked_pos, ids_keep=ids_keep)
        torch.testing.assert_close(kept, gather_tokens(tokens, ids_keep), atol=1e-6, rtol=0)
        # 36 px: not a multiple of the patch -> zero-padded convolution of everything, then the gather
        y = torch.randn(2, 3, 36, 36)
        ids_keep = torch.argsort(torch.rand(2, 25), dim=1)[:, :5]
        _, tokens, grid = model.embeddings(y, interpolate_pos_encoding=True)
        _, kept, _ = model.embeddings(y, interpolate_pos_encoding=True, ids_keep=ids_keep)
        out = model(y, noise=torch.rand(2, 25), mask_ratio=0.8, interpolate_pos_encoding=True)
    assert grid == (5, 5)
    torch.testing.assert_close(kept, gather_tokens(tokens, ids_keep), atol=0, rtol=0)
    assert out.last_hidden_state.shape == (2, 1 + num_visible_tokens(25, 0.8), 48)


@pytest.mark.parametrize("num_prefix_tokens", [0, 1, 3])
def test_restore_with_prefix_tokens_is_one_gather_of_the_same_tokens(num_prefix_tokens):
    torch.manual_seed(0)
    x = torch.randn(2, num_prefix_tokens + 3, 5, requires_grad=True)
    mask_token = torch.randn(1, 1, 5, requires_grad=True)
    ids_restore = torch.argsort(torch.argsort(torch.rand(2, 8), dim=1), dim=1)
    got = restore_tokens(x, ids_restore, mask_token, num_prefix_tokens=num_prefix_tokens)
    expected = torch.cat([x[:, :num_prefix_tokens], restore_tokens(x[:, num_prefix_tokens:], ids_restore,
                                                                    mask_token)], dim=1)
    assert got.shape == (2, num_prefix_tokens + 8, 5)
    assert torch.equal(got, expected)
    grads = torch.autograd.grad((got * torch.arange(got.numel()).view_as(got)).sum(), (x, mask_token))
    expected_grads = torch.autograd.grad((expected * torch.arange(got.numel()).view_as(got)).sum(), (x, mask_token))
    for grad, expected_grad in zip(grads, expected_grads):
        torch.testing.assert_close(grad, expected_grad)


@pytest.mark.parametrize("implementation", ["sdpa", "eager"])
def test_self_attention_qkv_split_matches_the_textbook_layout(implementation):
    torch.manual_seed(0)
    config = VitConfig(**TINY)
    config._attn_implementation = implementation
    attention = perturbed(SelfAttention(config, 48, 3))
    x = torch.randn(2, 7, 48, requires_grad=True)
    out, _ = attention(x)
    # reference: the (3, B, heads, N, d) permute, plain softmax attention
    qkv = attention.qkv(x).reshape(2, 7, 3, 3, 16).permute(2, 0, 3, 1, 4)
    query, key, value = qkv[0], qkv[1], qkv[2]
    probs = (query @ key.transpose(-2, -1) * 16**-0.5).softmax(-1)
    expected = attention.proj((probs @ value).transpose(1, 2).reshape(2, 7, 48))
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=1e-5)
    weight = torch.randn_like(out)
    grads = torch.autograd.grad((out * weight).sum(), (x, attention.qkv.weight))
    expected_grads = torch.autograd.grad((expected * weight).sum(), (x, attention.qkv.weight))
    for grad, expected_grad in zip(grads, expected_grads):
        torch.testing.assert_close(grad, expected_grad, atol=1e-5, rtol=1e-5)


def test_normalised_pixel_target_matches_mean_and_unbiased_variance():
    torch.manual_seed(0)
    model = MaeForPreTraining(MaeConfig(**TINY, decoder_hidden_size=16, decoder_num_hidden_layers=1,
                                        decoder_num_attention_heads=2, norm_pix_loss=True)).eval()
    x = torch.randn(2, 3, 32, 32) * 3 + 1
    logits = torch.randn(2, 16, 8 * 8 * 3)
    target = model.patchify(x)
    target = (target - target.mean(-1, keepdim=True)) / (target.var(-1, keepdim=True) + 1e-6) ** 0.5
    torch.testing.assert_close(model.patch_losses(x, logits), (logits - target).pow(2).mean(-1), atol=1e-6, rtol=1e-6)
