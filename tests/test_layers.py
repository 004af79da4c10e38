"""Each shared block of `hf_vision_zoo.layers` on its own, against its definition and, where timm has the same
function, against timm (`timm.models.swin_transformer`)."""

import pytest
import torch
import torch.nn.functional as F
from timm.models import swin_transformer as timm_swin
from torch import nn

from hf_vision_zoo.layers import (
    DropPath,
    Mlp,
    PatchEmbed,
    drop_path,
    eager_attention_forward,
    get_attention_function,
    pad_to_window,
    relative_position_bias,
    relative_position_index,
    shifted_window_mask,
    to_2tuple,
    window_partition,
    window_reverse,
)

# ---------------------------------------------------------------------------------------------------- drop path


def test_drop_path_is_identity_in_eval_and_at_zero():
    x = torch.randn(8, 5, 3)
    module = DropPath(0.5).eval()
    assert torch.equal(module(x), x)
    assert torch.equal(drop_path(x, 0.5, training=False), x)
    assert torch.equal(drop_path(x, 0.0, training=True), x)
    assert torch.equal(DropPath(0.0).train()(x), x)


def test_drop_path_drops_whole_samples_at_the_expected_rate_and_rescales(seed):
    p = 0.3
    x = torch.rand(20000, 4, 3) + 0.5  # strictly positive, so a dropped sample is exactly zero
    module = DropPath(p).train()
    out = module(x)
    ratio = out / x
    per_sample = ratio.flatten(1)
    # a sample is either dropped entirely or kept entirely, scaled by 1/(1-p)
    dropped = (per_sample == 0).all(dim=1)
    kept = torch.isclose(per_sample, torch.full_like(per_sample, 1 / (1 - p))).all(dim=1)
    assert (dropped | kept).all(), "drop path must act on whole samples"
    keep_rate = kept.float().mean().item()
    assert abs(keep_rate - (1 - p)) < 0.02, f"keep rate {keep_rate:.3f}, expected {1 - p}"
    # the expectation is preserved
    assert abs(out.mean().item() / x.mean().item() - 1) < 0.03
    # different calls draw different masks
    assert not torch.equal(module(x), out)


def test_drop_path_gradient_flows_only_through_kept_samples(seed):
    x = torch.ones(64, 3, requires_grad=True)
    out = drop_path(x, 0.5, training=True)
    out.sum().backward()
    kept = out.detach()[:, 0] != 0
    assert torch.allclose(x.grad[kept], torch.full_like(x.grad[kept], 2.0))
    assert torch.equal(x.grad[~kept], torch.zeros_like(x.grad[~kept]))


@pytest.mark.parametrize("p", [1.0, 1.5, -0.1])
def test_drop_path_rejects_invalid_probabilities(p):
    with pytest.raises(ValueError, match="drop_prob"):
        DropPath(p)
    with pytest.raises(ValueError, match="drop_prob"):
        drop_path(torch.ones(4, 2), p, training=True)


def test_drop_path_repr():
    assert "0.250" in repr(DropPath(0.25))


# ---------------------------------------------------------------------------------------------------- MLP


def test_mlp_shapes_and_computation(seed):
    mlp = Mlp(8, 32).eval()
    assert (mlp.fc1.in_features, mlp.fc1.out_features, mlp.fc2.out_features) == (8, 32, 8)
    x = torch.randn(2, 5, 8)
    torch.testing.assert_close(mlp(x), mlp.fc2(F.gelu(mlp.fc1(x))))
    wide = Mlp(8, 16, out_features=4, hidden_act="relu", bias=False)
    assert wide(x).shape == (2, 5, 4) and wide.fc1.bias is None and wide.fc2.bias is None
    torch.testing.assert_close(wide(x), wide.fc2(F.relu(wide.fc1(x))))


def test_mlp_dropout_only_in_training(seed):
    mlp = Mlp(8, 32, dropout=0.5)
    x = torch.randn(4, 8)
    mlp.eval()
    torch.testing.assert_close(mlp(x), mlp.fc2(F.gelu(mlp.fc1(x))))
    mlp.train()
    assert not torch.allclose(mlp(x), mlp(x)), "dropout inactive in training"
    assert isinstance(Mlp(8, 32).drop, nn.Identity)


# ---------------------------------------------------------------------------------------------------- patch embed


def test_patch_embed_shapes(seed):
    embed = PatchEmbed(4, 3, 16)
    x = torch.randn(2, 3, 32, 24)
    tokens, grid = embed(x)
    assert grid == (8, 6) and tokens.shape == (2, 48, 16)
    # tokens are the convolution output, row-major, then LayerNorm
    expected = embed.norm(embed.proj(x).flatten(2).transpose(1, 2))
    torch.testing.assert_close(tokens, expected)
    plain = PatchEmbed((2, 4), 1, 8, use_norm=False)
    tokens, grid = plain(torch.randn(1, 1, 8, 8))
    assert plain.norm is None and grid == (4, 2) and tokens.shape == (1, 8, 8)


def test_patch_embed_pads_bottom_right_to_whole_patches(seed):
    embed = PatchEmbed(4, 3, 16)
    x = torch.randn(1, 3, 30, 18)
    tokens, grid = embed(x)
    assert grid == (8, 5)
    padded = F.pad(x, (0, 2, 0, 2))  # zeros on the right (18 -> 20) and bottom (30 -> 32)
    torch.testing.assert_close(tokens, embed(padded)[0])


def test_patch_embed_errors():
    with pytest.raises(ValueError, match="smaller than one patch"):
        PatchEmbed(4, 3, 8)(torch.randn(1, 3, 3, 16))
    with pytest.raises(ValueError, match="not a multiple of the patch size"):
        PatchEmbed(4, 3, 8, pad_to_patch=False)(torch.randn(1, 3, 10, 16))


# ---------------------------------------------------------------------------------------------------- windows


@pytest.mark.parametrize(("height", "width", "window"),
                         [(8, 8, (4, 4)), (14, 21, (7, 7)), (6, 8, (3, 4)), (4, 4, (4, 4))])
def test_window_partition_round_trip_and_matches_timm(height, width, window):
    x = torch.randn(2, height, width, 5)
    windows = window_partition(x, window)
    count = (height // window[0]) * (width // window[1])
    assert windows.shape == (2 * count, window[0] * window[1], 5)
    assert torch.equal(window_reverse(windows, window, height, width), x)
    theirs = timm_swin.window_partition(x, window)  # (B * nW, wh, ww, C)
    assert torch.equal(windows, theirs.reshape(windows.shape))
    assert torch.equal(window_reverse(windows, window, height, width),
                       timm_swin.window_reverse(theirs, window, height, width))
    # window k of image b is the (row, col) block in row-major order
    rows, cols = height // window[0], width // window[1]
    r, c = rows - 1, min(1, cols - 1)  # image 1, last block row, second block column (if any)
    k = count + r * cols + c
    block = x[1, r * window[0]:(r + 1) * window[0], c * window[1]:(c + 1) * window[1]]
    assert torch.equal(windows[k], block.reshape(-1, 5))


@pytest.mark.parametrize(("height", "width", "window", "shift"), [(8, 12, 4, 2), (8, 8, 4, 0), (14, 7, 7, 3)])
def test_window_partition_index_is_roll_then_partition(height, width, window, shift):
    from hf_vision_zoo.layers.window import window_partition_index

    x = torch.randn(2, height, width, 3)
    index, inverse = window_partition_index(height, width, (window, window), shift)
    gathered = x.flatten(1, 2)[:, index]
    rolled = torch.roll(x, shifts=(-shift, -shift), dims=(1, 2)) if shift else x
    expected = window_partition(rolled, (window, window))
    assert torch.equal(gathered.reshape(expected.shape), expected)
    assert torch.equal(gathered[:, inverse].view_as(x), x)
    # training right after inference mode: the cached indices are ordinary tensors
    getattr(window_partition_index, "cache_clear", lambda: None)()  # start cold, inside inference mode
    with torch.inference_mode():
        window_partition_index(height, width, (window, window), shift)
    cached, _ = window_partition_index(height, width, (window, window), shift)
    assert not cached.is_inference()


def test_pad_to_window():
    x = torch.randn(2, 5, 9, 3)
    padded, height, width = pad_to_window(x, (4, 4))
    assert (height, width) == (8, 12) and padded.shape == (2, 8, 12, 3)
    assert torch.equal(padded[:, :5, :9], x)
    assert padded[:, 5:].abs().sum() == 0 and padded[:, :, 9:].abs().sum() == 0
    same, height, width = pad_to_window(x, (5, 3))
    assert same is x and (height, width) == (5, 9)


# ---------------------------------------------------------------------------------------------------- relative position


@pytest.mark.parametrize("window", [(7, 7), (4, 6), (12, 12), (1, 1)])
def test_relative_position_index_matches_timm(window):
    ours = relative_position_index(window)
    theirs = timm_swin.get_relative_position_index(*window)
    n = window[0] * window[1]
    assert ours.shape == (n, n) and ours.dtype == torch.long
    assert torch.equal(ours, theirs)
    assert ours.min() == 0 and ours.max() == (2 * window[0] - 1) * (2 * window[1] - 1) - 1
    # the same relative offset always maps to the same table row: the diagonal is the centre of the table
    assert (ours.diagonal() == ours[0, 0]).all()


def test_relative_position_bias_gathers_the_table(seed):
    window = (3, 4)
    index = relative_position_index(window)
    table = torch.randn((2 * 3 - 1) * (2 * 4 - 1), 5)
    bias = relative_position_bias(table, index)
    n = 12
    assert bias.shape == (5, n, n)
    for head in (0, 4):
        for i, j in ((0, 0), (2, 7), (11, 3)):
            assert bias[head, i, j] == table[index[i, j], head]


# ---------------------------------------------------------------------------------------------------- shifted mask


@pytest.mark.parametrize(("resolution", "window", "shift"), [((8, 8), 4, 2), ((8, 12), 4, 2), ((14, 14), 7, 3),
                                                             ((12, 16), 4, 1)])
def test_shifted_window_mask_matches_timm_block(resolution, window, shift):
    block = timm_swin.SwinTransformerBlock(dim=8, input_resolution=resolution, num_heads=2, window_size=window,
                                           shift_size=shift)
    assert tuple(block.window_size) == (window, window) and tuple(block.shift_size) == (shift, shift)
    theirs = block.attn_mask
    ours = shifted_window_mask(*resolution, window, shift)
    assert ours.shape == theirs.shape == ((resolution[0] // window) * (resolution[1] // window), window**2, window**2)
    assert torch.equal(ours, theirs)
    assert set(ours.unique().tolist()) <= {0.0, -100.0}
    # windows away from the bottom/right seams have no mask at all
    assert ours[0].abs().sum() == 0 and ours[-1].abs().sum() > 0


def test_shifted_window_mask_options():
    mask = shifted_window_mask(8, 8, (4, 4), (2, 2), mask_value=float("-inf"), dtype=torch.float64)
    assert mask.dtype == torch.float64
    assert set(mask.unique().tolist()) == {0.0, float("-inf")}


# ---------------------------------------------------------------------------------------------------- attention


class _Dummy(nn.Module):
    pass


@pytest.mark.parametrize("with_mask", [False, True])
def test_eager_attention_equals_sdpa(with_mask, seed):
    batch, heads, tokens, dim = 3, 2, 10, 8
    q, k, v = (torch.randn(batch, heads, tokens, dim) for _ in range(3))
    mask = torch.randn(batch, heads, tokens, tokens) if with_mask else None
    module = _Dummy().eval()
    out, probs = eager_attention_forward(module, q, k, v, mask)
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert out.shape == (batch, tokens, heads, dim)  # transformers' backend contract: (B, N, heads, d)
    torch.testing.assert_close(out, expected.transpose(1, 2), atol=1e-6, rtol=1e-5)
    assert probs.shape == (batch, heads, tokens, tokens)
    torch.testing.assert_close(probs.sum(-1), torch.ones(batch, heads, tokens))
    # an explicit scaling
    out_scaled, _ = eager_attention_forward(module, q, k, v, mask, scaling=0.1)
    torch.testing.assert_close(out_scaled, F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=0.1)
                               .transpose(1, 2), atol=1e-6, rtol=1e-5)


def test_eager_attention_dropout_only_in_training(seed):
    q = k = v = torch.randn(1, 1, 6, 4)
    module = _Dummy().eval()
    assert torch.equal(eager_attention_forward(module, q, k, v, None, dropout=0.9)[0],
                       eager_attention_forward(module, q, k, v, None)[0])
    module.train()
    _, probs = eager_attention_forward(module, q, k, v, None, dropout=0.5)
    assert (probs == 0).any()


def test_get_attention_function_dispatch():
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    class Config:
        _attn_implementation = "sdpa"

    assert get_attention_function(Config()) is sdpa_attention_forward
    assert get_attention_function(Config(), output_attentions=True) is eager_attention_forward
    Config._attn_implementation = "eager"
    assert get_attention_function(Config()) is eager_attention_forward


def test_to_2tuple():
    assert to_2tuple(7) == (7, 7)
    assert to_2tuple([3, 4]) == (3, 4)
    assert to_2tuple((5, 6)) == (5, 6)
    with pytest.raises(ValueError):
        to_2tuple((1, 2, 3))


@pytest.mark.parametrize("layer_scale", [None, 1e-1])
@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
def test_transformer_block_matches_timm_block(layer_scale, implementation):
    from timm.models.vision_transformer import Block
    from transformers import PretrainedConfig

    from hf_vision_zoo.layers import TransformerBlock

    torch.manual_seed(0)
    config = PretrainedConfig()
    config._attn_implementation = implementation
    ours = TransformerBlock(config, 32, 4, mlp_ratio=3.0, layer_scale_init_value=layer_scale).eval()
    theirs = Block(32, 4, mlp_ratio=3.0, qkv_bias=True, init_values=layer_scale).eval()
    with torch.no_grad():
        for p in theirs.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    missing, unexpected = ours.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.randn(2, 10, 32)
    with torch.no_grad():
        out, probs = ours(x, output_attentions=True)
        torch.testing.assert_close(out, theirs(x), atol=1e-5, rtol=0)
        torch.testing.assert_close(ours(x)[0], out, atol=1e-5, rtol=0)
    assert probs.shape == (2, 4, 10, 10)
    assert ours(x)[1] is None


def test_cpu_tuned_attention_picks_eager_only_where_sdpa_is_slower():
    from transformers import PretrainedConfig

    from hf_vision_zoo.layers import eager_attention_forward, get_cpu_tuned_attention_function

    config = PretrainedConfig()
    config._attn_implementation = "sdpa"
    sdpa = get_attention_function(config)
    q, k = torch.randn(2, 3, 50, 8), torch.randn(2, 3, 50, 8)
    assert get_cpu_tuned_attention_function(config, q, k) is sdpa
    assert get_cpu_tuned_attention_function(config, q[:, :, :1], k) is eager_attention_forward  # one query
    assert get_cpu_tuned_attention_function(config, q.bfloat16(), k.bfloat16()) is eager_attention_forward
    long_keys = torch.randn(2, 3, 300, 8, dtype=torch.bfloat16)
    assert get_cpu_tuned_attention_function(config, q.bfloat16(), long_keys) is sdpa
    learned = torch.zeros(1, 3, 50, 50, requires_grad=True)
    assert get_cpu_tuned_attention_function(config, q, k, learned) is eager_attention_forward
    assert get_cpu_tuned_attention_function(config, q, k, learned.detach()) is sdpa
    config._attn_implementation = "eager"
    assert get_cpu_tuned_attention_function(config, q, k) is eager_attention_forward
