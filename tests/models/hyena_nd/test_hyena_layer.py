"""The multi-axis Hyena operator (`layers.hyena`) on its own: the FFT long convolution is the direct 2-D convolution
with the same implicit filter, the filter and the operator behave as specified, and bad input fails clearly."""

import pytest
import torch

from hf_vision_zoo.layers.hyena import (
    HyenaFilter2d,
    HyenaOperator2d,
    direct_long_conv2d,
    fft_long_conv2d,
    hyena_positional_embedding,
)


def _naive_conv(u, k, bias, fft_length):
    """Four nested loops over the definition: y[i, j] = sum_{a<=i, b<=j} k[a, b] u[i-a, j-b] / L + D u[i, j]."""
    batch, channels, height, width = u.shape
    y = torch.zeros_like(u)
    for i in range(height):
        for j in range(width):
            for a in range(i + 1):
                for b in range(j + 1):
                    y[:, :, i, j] += k[:, a, b] * u[:, :, i - a, j - b]
    return y / fft_length + u * bias[:, None, None]


@pytest.mark.parametrize("grid", [(5, 5), (4, 7), (1, 6)])
def test_fft_long_conv_equals_direct_convolution(grid):
    generator = torch.Generator().manual_seed(0)
    u = torch.randn(2, 3, *grid, generator=generator, dtype=torch.float64)
    k = torch.randn(3, *grid, generator=generator, dtype=torch.float64)
    bias = torch.randn(3, generator=generator, dtype=torch.float64)
    fft = fft_long_conv2d(u, k, bias)
    direct = direct_long_conv2d(u, k, bias)
    naive = _naive_conv(u, k, bias, 2 * max(grid))
    torch.testing.assert_close(direct, naive, atol=1e-12, rtol=0)
    torch.testing.assert_close(fft, naive, atol=1e-12, rtol=0)
    # float32 path (what the model runs): same result to float32 precision
    fft32 = fft_long_conv2d(u.float(), k.float(), bias.float())
    assert fft32.dtype == torch.float32
    torch.testing.assert_close(fft32.double(), naive, atol=1e-5, rtol=1e-5)


def test_fft_long_conv_with_the_operators_implicit_filter_is_a_linear_causal_convolution():
    """With the filter the operator really builds: equal to the direct convolution, and causal in both axes."""
    torch.manual_seed(0)
    layer = HyenaOperator2d(8, 6, order=2, filter_order=8)
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(torch.randn_like(p) * 0.1)
        k = layer.filter_fn(6, 6).permute(2, 0, 1)
        u = torch.randn(2, 8, 6, 6)
        torch.testing.assert_close(fft_long_conv2d(u, k, layer.filter_fn.bias),
                                   direct_long_conv2d(u, k, layer.filter_fn.bias), atol=1e-5, rtol=1e-5)
        # causality: an impulse at (2, 3) only reaches (i, j) with i >= 2 and j >= 3 (no circular wrap-around)
        impulse = torch.zeros(1, 8, 6, 6)
        impulse[..., 2, 3] = 1.0
        response = fft_long_conv2d(impulse, k, None)
        assert response[..., :2, :].abs().max() < 1e-6 and response[..., :, :3].abs().max() < 1e-6
        torch.testing.assert_close(response[0, :, 2:, 3:], k[:, :4, :3] / 12, atol=1e-6, rtol=1e-5)


def test_positional_embedding_and_filter_resampling():
    z, t = hyena_positional_embedding(14, 3)
    assert z.shape == (1, 14, 3) and t.shape == (1, 14, 1)
    torch.testing.assert_close(z[0, :, 0], torch.linspace(0, 1, 14))
    torch.testing.assert_close(z[0, :, 1] ** 2 + z[0, :, 2] ** 2, torch.ones(14))
    torch.manual_seed(0)
    filt = HyenaFilter2d(channels=4, max_len=6, order=8)
    with torch.no_grad():
        native = filt(6, 6)
        assert native.shape == (6, 6, 4)
        # each axis is resampled on its own: changing the width keeps the first and last columns
        wide, narrow = filt(4, 9), filt(4, 6)
        assert wide.shape == (4, 9, 4) and narrow.shape == (4, 6, 4)
        torch.testing.assert_close(wide[:, [0, -1]], narrow[:, [0, -1]])
        assert not torch.allclose(filt(4, 9), filt(9, 4).transpose(0, 1))  # rows and columns are not symmetric
        # resampling to the native length is the identity; the end points are kept on any grid
        torch.testing.assert_close(filt.pos_emb(6)[0], filt.pos_emb.z)
        z9, t9 = filt.pos_emb(9)
        torch.testing.assert_close(z9[:, [0, -1]], filt.pos_emb.z[:, [0, -1]])
        torch.testing.assert_close(t9[0, :, 0], torch.linspace(0, 1, 9))
    with pytest.raises(ValueError, match="odd"):
        hyena_positional_embedding(8, 4)


@pytest.mark.parametrize("mode", ["standard", "seq"])
def test_operator_direction_of_the_long_convolution(mode):
    """"standard" carries information towards the bottom-right only, "seq" (flipped) towards the top-left only
    (beyond the one-pixel reach of the 3x3 short filter)."""
    torch.manual_seed(0)
    layer = HyenaOperator2d(8, 7, order=2, filter_order=8, directional_mode=mode).eval()
    with torch.no_grad():
        for p in layer.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    x = torch.randn(1, 7, 7, 8)
    corner = (6, 6) if mode == "standard" else (0, 0)
    poked = x.clone()
    poked[0, corner[0], corner[1]] += 5.0
    with torch.no_grad():
        change = (layer(poked) - layer(x)).abs().amax(-1)[0]
    tiny = 1e-6 * change[corner].item()  # FFT round-off
    if mode == "standard":  # a change at the bottom-right cannot reach rows/cols < 5
        assert change[:5, :].max() < tiny and change[:, :5].max() < tiny
    else:
        assert change[2:, :].max() < tiny and change[:, 2:].max() < tiny
    assert change[corner].item() > 1e-2
    # the other corner does reach everything
    far = (0, 0) if mode == "standard" else (6, 6)
    poked = x.clone()
    poked[0, far[0], far[1]] += 5.0
    with torch.no_grad():
        reach = (layer(poked) - layer(x)).abs().amax(-1)
    assert (reach > 10 * tiny).all(), reach


def test_operator_layouts_order_and_bad_input():
    torch.manual_seed(0)
    layer = HyenaOperator2d(6, 4, order=3, filter_order=8).eval()
    assert layer.in_proj.out_features == 6 * 4 and layer.filter_fn.channels == 6 * 2
    x = torch.randn(2, 4, 4, 6)
    with torch.no_grad():
        as_map = layer(x)
        as_tokens = layer(x.reshape(2, 16, 6))
        as_tokens_grid = layer(x.reshape(2, 16, 6), grid_size=(4, 4))
    torch.testing.assert_close(as_tokens, as_map.reshape(2, 16, 6))
    torch.testing.assert_close(as_tokens_grid, as_tokens)
    with pytest.raises(ValueError, match="not a square grid"):
        layer(torch.randn(2, 17, 6))  # e.g. a class token in front of the patches
    with pytest.raises(ValueError, match="grid_size"):
        layer(torch.randn(2, 16, 6), grid_size=(3, 5))
    with pytest.raises(ValueError, match="built for 4x4.*interpolate=True"):
        layer(torch.randn(2, 5, 3, 6))
    with torch.no_grad():
        other = layer(torch.randn(2, 5, 3, 6), interpolate=True)
    assert other.shape == (2, 5, 3, 6) and torch.isfinite(other).all()
    with pytest.raises(ValueError, match="channels"):
        layer(torch.randn(2, 4, 4, 5))
    with pytest.raises(ValueError, match="order"):
        HyenaOperator2d(6, 4, order=1)
    with pytest.raises(ValueError, match="directional_mode"):
        HyenaOperator2d(6, 4, directional_mode="4dir")


def test_operator_optim_hints():
    layer = HyenaOperator2d(6, 4, filter_order=8)
    hints = layer.optim_hints()
    names = dict(layer.named_parameters())
    assert set(hints) <= set(names)
    assert hints["filter_fn.pos_emb.z"] == {"lr": 1e-5, "weight_decay": 0.0}
    filter_params = {n for n in names if n.startswith(("filter_fn.mlp.", "filter_fn.sin."))}
    assert filter_params and all(hints[n] == {"lr": 1e-3, "weight_decay": 0.0} for n in filter_params)
    # the projections, the short filter and the skip weights train like the rest of the model
    assert not any(n.startswith(("in_proj", "out_proj", "short_filter")) or n == "filter_fn.bias" for n in hints)
    assert HyenaOperator2d(6, 4, filter_lr=None, filter_weight_decay=None, pos_emb_lr=None).optim_hints() == {}
