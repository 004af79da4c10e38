"""The multi-axis Hyena operator: a token mixer made of gated long convolutions with implicit 2-D filters.

Hyena N-D (Zimerman & Wolf, "Multi-Dimensional Hyena for Spatial Inductive Bias", AISTATS 2024,
https://arxiv.org/abs/2309.13600; official code https://github.com/Itamarzimm/HyenaND, Apache-2.0) generalises the
Hyena layer (Poli et al., 2023) from sequences to images. For a `(B, H, W, C)` map, `HyenaOperator2d` computes

    x_0, ..., x_{N-1}, v = split(ShortConv3x3(Linear_in(u)))          (N = `order`, N + 1 chunks of C channels)
    for n = 1 .. N-1 (from x_{N-1} down to x_1):  v = h_n * (x_n . v) + D_n . (x_n . v)
    y = Linear_out(x_0 . v)

where `.` is the element-wise product and `h_n * .` a depthwise 2-D long convolution over the whole grid, computed
with `torch.fft.rfft2` on a zero-padded `2H x 2W` grid (a linear, not circular, convolution; causal in both axes:
output (i, j) sees inputs (i', j') with i' <= i and j' <= j). The filters `h_n` are *implicit*: an MLP with sine
activations (`HyenaFilter2d`) maps a positional embedding of (row, column) to C * (N - 1) filter values, which are
then multiplied by a separable exponential decay in each axis (`HyenaModulation2d`).

With `directional_mode="seq"` the first long convolution is applied to the grid flipped in both axes (an
anti-causal convolution); models alternate "seq" and "standard" blocks so information flows both ways.

Faithful to the official `hyena2d.py` (`HyenaOperator2d(hyena2d_filter=True, window_mode="standard")`), including
its normalisation: the product of the two FFTs is divided by the FFT length `2L` on top of `irfft2`'s own `1/(2L)^2`.
Differences, none of which changes the output at the grid size the layer is built for (`max_grid`):
- the official layer only accepts the square grid it was built for. Here any `(H, W)` grid works: at `max_grid` the
  stored positional embedding is used as is; for another size it is resampled linearly (align_corners) to H and W
  points per axis, i.e. the filter is stretched over the new grid, as learned absolute position embeddings are
  interpolated. The FFT normalisation uses L = max(H, W);
- the sine activation of the filter MLP is one module (`sin.freq`) instead of the same module listed three times;
  the time stamps `t` and the decay rates are non-persistent buffers rebuilt from the hyper-parameters;
- only the "standard" and "seq" directional modes and the default "standard" decay window are implemented (the
  published models use these); the official "parallel", "4dir", "4dirp" modes and "learn" / "symettric" windows,
  and the direct (non-implicit) filter parametrisation, are not.

Optimiser hints: as in Hyena, the filter MLP trains with its own learning rate and no weight decay, and the
positional embedding with a tiny learning rate. `HyenaOperator2d.optim_hints()` lists them; the zoo's
`training.optim.param_groups` honours them.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

DIRECTIONAL_MODES = ("standard", "seq")


# ----------------------------------------------------------------------------------------------------------------
# deterministic tensors (used at construction and by the models' `_init_weights`)
# ----------------------------------------------------------------------------------------------------------------


def hyena_positional_embedding(seq_len: int, emb_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Hyena's filter input for `seq_len` positions: `z = [t, cos(f w), -sin(f w)]` of shape `(1, L, emb_dim)` with
    `t = linspace(0, 1, L)`, `w = 2 pi l / L` and `(emb_dim - 1) // 2` frequencies `f = linspace(1e-4, bands - 1)`;
    also returns `t` as `(1, L, 1)`."""
    if emb_dim < 3 or emb_dim % 2 == 0:
        raise ValueError(f"emb_dim must be odd and >= 3 (time, then cosine/sine pairs), got {emb_dim}")
    if seq_len < 1:
        raise ValueError(f"seq_len must be >= 1, got {seq_len}")
    bands = (emb_dim - 1) // 2
    t = torch.linspace(0, 1, seq_len)[None, :, None]
    angle = torch.linspace(1e-4, bands - 1, bands)[None, None] * (
        2 * math.pi * torch.linspace(0, seq_len - 1, seq_len)[None, :, None] / seq_len)
    return torch.cat([t, torch.cos(angle), -torch.sin(angle)], dim=-1), t


def hyena_decay_rates(channels: int, fast_decay_pct: float = 0.3, slow_decay_pct: float = 1.5,
                      target: float = 1e-2) -> torch.Tensor:
    """Per-channel decay rates `(1, 1, channels)`: channel c decays to `target` after between `fast_decay_pct` and
    `slow_decay_pct` of the (normalised) filter length."""
    max_decay = math.log(target) / fast_decay_pct
    min_decay = math.log(target) / slow_decay_pct
    return torch.linspace(min_decay, max_decay, channels)[None, None]


def _resample(values: torch.Tensor, length: int) -> torch.Tensor:
    """`(1, L, E) -> (1, length, E)` by linear interpolation with aligned end points (identity when L == length)."""
    if values.shape[1] == length:
        return values
    if values.shape[1] == 1:
        return values.expand(1, length, values.shape[2])
    out = F.interpolate(values.transpose(1, 2), size=length, mode="linear", align_corners=True)
    return out.transpose(1, 2)


# ----------------------------------------------------------------------------------------------------------------
# the implicit filter
# ----------------------------------------------------------------------------------------------------------------


class Sin(nn.Module):
    """`sin(freq * x)` with a learned frequency per feature (`freq`: `(1, dim)`)."""

    def __init__(self, dim: int, w: float = 1.0):
        super().__init__()
        self.w = float(w)
        self.freq = nn.Parameter(torch.full((1, dim), self.w))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(self.freq * x)


class HyenaPositionalEmbedding(nn.Module):
    """The learned positional features `z` (`(1, L, emb_dim)`, initialised by `hyena_positional_embedding`) and the
    normalised positions `t` (a buffer) of one axis."""

    def __init__(self, seq_len: int, emb_dim: int):
        super().__init__()
        self.seq_len = seq_len
        self.emb_dim = emb_dim
        z, t = hyena_positional_embedding(seq_len, emb_dim)
        self.z = nn.Parameter(z)
        self.register_buffer("t", t, persistent=False)

    def forward(self, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """`(z, t)` for `length` positions spread over the same normalised span."""
        return _resample(self.z, length), _resample(self.t, length)


class HyenaModulation2d(nn.Module):
    """Separable exponential window `exp(-t_i |a_c|) * exp(-t_j |a_c|)` multiplied onto the filter (the official
    `ExponentialModulation` with `hyena2d_filter=True`); `deltas` is a fixed buffer (learning rate 0 in Hyena)."""

    def __init__(self, channels: int, fast_decay_pct: float = 0.3, slow_decay_pct: float = 1.5,
                 target: float = 1e-2, sqrt_decay: bool = False, shift: float = 0.0):
        super().__init__()
        self.channels = channels
        self.fast_decay_pct, self.slow_decay_pct, self.target = fast_decay_pct, slow_decay_pct, target
        self.sqrt_decay = sqrt_decay
        self.shift = shift
        self.register_buffer("deltas", hyena_decay_rates(channels, fast_decay_pct, slow_decay_pct, target),
                             persistent=False)

    def default_deltas(self) -> torch.Tensor:
        """The initial value of the `deltas` buffer."""
        return hyena_decay_rates(self.channels, self.fast_decay_pct, self.slow_decay_pct, self.target)

    def forward(self, t_rows: torch.Tensor, t_cols: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """`t_rows` `(1, H, 1)`, `t_cols` `(1, W, 1)`, filter `h` `(1, H, W, C)`."""
        rate = self.deltas.abs()
        decay = torch.exp(-t_rows * rate)[:, :, None, :] * torch.exp(-t_cols * rate)[:, None, :, :]
        if self.sqrt_decay:
            decay = decay**0.5
        return h * (decay + self.shift)


class HyenaFilter2d(nn.Module):
    """Implicit 2-D long filters: `h(i, j) = MLP([z_i, z_j]) * window(i, j)` for `channels` channels, plus the
    per-channel skip weight `bias` (the `D` of `y = h * u + D u`)."""

    def __init__(self, channels: int, max_len: int, order: int = 64, emb_dim: int = 3, num_inner_mlps: int = 2,
                 w: float = 1.0, fast_decay_pct: float = 0.3, slow_decay_pct: float = 1.5, target: float = 1e-2,
                 sqrt_decay: bool = False):
        super().__init__()
        self.channels = channels
        self.max_len = max_len
        self.bias = nn.Parameter(torch.randn(channels))
        self.pos_emb = HyenaPositionalEmbedding(max_len, emb_dim)
        widths = [2 * emb_dim] + [order] * (num_inner_mlps + 1)
        self.mlp = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.mlp.append(nn.Linear(order, channels, bias=False))
        self.sin = Sin(order, w)  # one activation (one `freq`) shared by every hidden layer, as in Hyena
        self.modulation = HyenaModulation2d(channels, fast_decay_pct, slow_decay_pct, target, sqrt_decay)

    def forward(self, height: int, width: int) -> torch.Tensor:
        """The filters on a `height x width` grid, `(height, width, channels)`."""
        z_rows, t_rows = self.pos_emb(height)
        z_cols, t_cols = (z_rows, t_rows) if width == height else self.pos_emb(width)
        emb = torch.cat([z_rows[:, :, None, :].expand(1, height, width, -1),
                         z_cols[:, None, :, :].expand(1, height, width, -1)], dim=-1)
        h = emb
        for linear in self.mlp[:-1]:
            h = self.sin(linear(h))
        h = self.mlp[-1](h)
        return self.modulation(t_rows, t_cols, h)[0]


# ----------------------------------------------------------------------------------------------------------------
# the long convolution
# ----------------------------------------------------------------------------------------------------------------


def fft_long_conv2d(u: torch.Tensor, k: torch.Tensor, bias: torch.Tensor | None = None,
                    fft_length: int | None = None) -> torch.Tensor:
    """Depthwise causal 2-D convolution of `u` `(B, C, H, W)` with filters `k` `(C, H, W)` via FFT on a zero-padded
    `2H x 2W` grid, divided by `fft_length` (default `2 * max(H, W)`: the official normalisation), plus `bias * u`.

    Equals `y[b, c, i, j] = sum_{a <= i, b' <= j} k[c, a, b'] u[b, c, i - a, j - b'] / fft_length
    + bias[c] u[b, c, i, j]`.
    Computed in float32 (or wider) whatever the input dtype, returned in the input dtype.
    """
    height, width = u.shape[-2:]
    if k.shape[-2:] != (height, width):
        raise ValueError(f"filter grid {tuple(k.shape[-2:])} does not match the input grid {(height, width)}")
    fft_length = 2 * max(height, width) if fft_length is None else fft_length
    size = (2 * height, 2 * width)
    compute = torch.promote_types(u.dtype, torch.float32)
    k_f = torch.fft.rfft2(k.to(compute), s=size) / fft_length
    u_f = torch.fft.rfft2(u.to(compute), s=size)
    y = torch.fft.irfft2(u_f * k_f, s=size)[..., :height, :width]
    if bias is not None:
        y = y + u * bias[:, None, None]
    return y.to(u.dtype)


def direct_long_conv2d(u: torch.Tensor, k: torch.Tensor, bias: torch.Tensor | None = None,
                       fft_length: int | None = None) -> torch.Tensor:
    """The same convolution as `fft_long_conv2d`, computed directly with `F.conv2d` (O(H^2 W^2); for tests)."""
    height, width = u.shape[-2:]
    fft_length = 2 * max(height, width) if fft_length is None else fft_length
    padded = F.pad(u, (width - 1, 0, height - 1, 0))  # zeros above and to the left: a causal convolution
    weight = k.flip(-1, -2)[:, None].to(u.dtype) / fft_length
    y = F.conv2d(padded, weight, groups=u.shape[1])
    if bias is not None:
        y = y + u * bias[:, None, None]
    return y


# ----------------------------------------------------------------------------------------------------------------
# the operator
# ----------------------------------------------------------------------------------------------------------------


class HyenaOperator2d(nn.Module):
    """Hyena N-D token mixer on a 2-D grid of `dim`-channel tokens (see the module docstring).

    max_grid: side of the square grid the filters are built for (the official `l_max`).
    order: depth of the gating recursion N (N - 1 long convolutions); filter_order: width of the filter MLP.
    directional_mode: "standard", or "seq" (the first long convolution runs on the grid flipped in both axes).
    filter_lr / filter_weight_decay / pos_emb_lr: optimiser hints (absolute learning rates; None = no hint).
    """

    def __init__(self, dim: int, max_grid: int, order: int = 2, filter_order: int = 64, filter_emb_dim: int = 3,
                 filter_num_inner_mlps: int = 2, filter_sin_freq: float = 1.0, fast_decay_pct: float = 0.3,
                 slow_decay_pct: float = 1.5, decay_target: float = 1e-2, sqrt_decay: bool = False,
                 directional_mode: str = "standard", short_filter_size: int = 3, dropout: float = 0.0,
                 filter_lr: float | None = 1e-3, filter_weight_decay: float | None = 0.0,
                 pos_emb_lr: float | None = 1e-5):
        super().__init__()
        if order < 2:
            raise ValueError(f"order must be >= 2 (order - 1 long convolutions), got {order}")
        if directional_mode not in DIRECTIONAL_MODES:
            raise ValueError(f"directional_mode must be one of {DIRECTIONAL_MODES}, got {directional_mode!r}")
        if short_filter_size < 1 or short_filter_size % 2 == 0:
            raise ValueError(f"short_filter_size must be a positive odd int, got {short_filter_size}")
        if max_grid < 1:
            raise ValueError(f"max_grid must be >= 1, got {max_grid}")
        self.dim = dim
        self.max_grid = max_grid
        self.order = order
        self.directional_mode = directional_mode
        self.filter_lr, self.filter_weight_decay, self.pos_emb_lr = filter_lr, filter_weight_decay, pos_emb_lr
        inner = dim * (order + 1)
        self.in_proj = nn.Linear(dim, inner)
        self.short_filter = nn.Conv2d(inner, inner, short_filter_size, padding=short_filter_size // 2, groups=inner)
        self.filter_fn = HyenaFilter2d(dim * (order - 1), max_grid, order=filter_order, emb_dim=filter_emb_dim,
                                       num_inner_mlps=filter_num_inner_mlps, w=filter_sin_freq,
                                       fast_decay_pct=fast_decay_pct, slow_decay_pct=slow_decay_pct,
                                       target=decay_target, sqrt_decay=sqrt_decay)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.out_proj = nn.Linear(dim, dim)

    def optim_hints(self) -> dict[str, dict[str, float]]:
        """Per-parameter optimiser settings (names relative to this module), as the official code attaches them."""
        hints = {}
        filter_hint = {k: v for k, v in (("lr", self.filter_lr), ("weight_decay", self.filter_weight_decay))
                       if v is not None}
        if filter_hint:
            for name, _ in self.filter_fn.mlp.named_parameters():
                hints[f"filter_fn.mlp.{name}"] = dict(filter_hint)
            hints["filter_fn.sin.freq"] = dict(filter_hint)
        if self.pos_emb_lr is not None:
            hints["filter_fn.pos_emb.z"] = {"lr": self.pos_emb_lr, "weight_decay": 0.0}
        return hints

    def forward(self, hidden_states: torch.Tensor, grid_size: tuple[int, int] | None = None,
                interpolate: bool = False) -> torch.Tensor:
        """Mix `(B, H, W, C)` maps, or `(B, H * W, C)` tokens in row-major order (then give `grid_size`, or the
        token count must be a perfect square). Returns the same layout. A grid other than `max_grid x max_grid`
        needs `interpolate=True` (the filters are then evaluated on that grid)."""
        if hidden_states.ndim == 3:
            batch, tokens, channels = hidden_states.shape
            if grid_size is None:
                side = math.isqrt(tokens)
                if side * side != tokens:
                    raise ValueError(
                        f"HyenaOperator2d got {tokens} tokens, which is not a square grid; pass grid_size=(H, W) "
                        f"or a (B, H, W, C) map (a class token cannot be mixed by a 2-D long convolution)")
                grid_size = (side, side)
            height, width = grid_size
            if height * width != tokens:
                raise ValueError(f"grid_size {tuple(grid_size)} has {height * width} positions but the input has "
                                 f"{tokens} tokens")
            out = self._mix(hidden_states.reshape(batch, height, width, channels), interpolate)
            return out.reshape(batch, tokens, channels)
        if hidden_states.ndim != 4:
            raise ValueError(
                f"HyenaOperator2d expects (B, H, W, C) or (B, N, C) input, got {tuple(hidden_states.shape)}")
        return self._mix(hidden_states, interpolate)

    def _mix(self, u: torch.Tensor, interpolate: bool) -> torch.Tensor:
        batch, height, width, channels = u.shape
        if channels != self.dim:
            raise ValueError(f"HyenaOperator2d was built for {self.dim} channels, got {channels}")
        if (height, width) != (self.max_grid, self.max_grid) and not interpolate:
            raise ValueError(
                f"HyenaOperator2d got a {height}x{width} token grid but its implicit filters were built for "
                f"{self.max_grid}x{self.max_grid}; pass interpolate=True (interpolate_pos_encoding=True on a model) "
                f"to evaluate the filters on the new grid")
        u = self.short_filter(self.in_proj(u).permute(0, 3, 1, 2))  # (B, (N + 1) C, H, W)
        *gates, v = u.split(self.dim, dim=1)
        k = self.filter_fn(height, width).permute(2, 0, 1)  # ((N - 1) C, H, W), channel = n * C + c
        k = k.reshape(self.order - 1, self.dim, height, width)
        bias = self.filter_fn.bias.reshape(self.order - 1, self.dim)
        fft_length = 2 * max(height, width)
        for n, gate in enumerate(reversed(gates[1:])):
            v = self.dropout(v * gate)
            flip = self.directional_mode == "seq" and n == 0
            if flip:
                v = v.flip(-1, -2)
            v = fft_long_conv2d(v, k[n], bias[n], fft_length)
            if flip:
                v = v.flip(-1, -2)
        return self.out_proj((v * gates[0]).permute(0, 2, 3, 1))


__all__ = ["DIRECTIONAL_MODES", "HyenaFilter2d", "HyenaModulation2d", "HyenaOperator2d", "HyenaPositionalEmbedding",
           "Sin", "direct_long_conv2d", "fft_long_conv2d", "hyena_decay_rates", "hyena_positional_embedding"]
