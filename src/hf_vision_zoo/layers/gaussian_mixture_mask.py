"""Multiplicative attention masks of "Toward a Deeper Understanding: RetNet Viewed through Convolution"
(Li et al., Pattern Recognition 2024, https://arxiv.org/abs/2309.05375; official code
https://github.com/CatworldLee/Gaussian-Mixture-Mask-Attention, read at b06b199).

Both masks MULTIPLY the scaled attention scores before the softmax, per element (the official `dots = mask(dots)`
with `dots = q @ k^T * d^-0.5`):
- ELM, the element-wise learnable mask: one learnable `(T, T)` matrix shared by the heads (official `Simple_Mask`,
  initialised to zeros, i.e. uniform attention at initialisation);
- GMM, the Gaussian mixture mask: for heads `h` and kernels `k`,
  `W_h = sum_k alpha[k, h] * G ** (1 / (sigma[k, h] ** 2 + 1e-5))` with the fixed kernel
  `G[i, j] = exp(-|p_i - p_j|^2) ** 0.5` over the patch-grid positions `p` (official `Gaussian_Mixture_Mask` and
  `On_attention_gaussian_mask`; here evaluated on the few distinct distances, then gathered), i.e. a mixture of
  `K` isotropic Gaussians of the relative offset with a learnable weight `alpha` and width `sigma` each (2
  parameters per kernel and head).

`G` is computed exactly as the official code does (float32 `exp` then `** 0.5`), so the far-away entries that
underflow to float32 denormals round the same way. The official models have no prefix token when a mask is used;
here prefix tokens ([CLS], registers) get the multiplier 1 (their scores are left as they are) under GMM, and ELM
covers all `T = prefix + patches` tokens.

Why no SDPA: a multiplicative mask needs the score matrix itself (`M * (q k^T)` is not `q k^T + A` for any
`A` independent of `q, k`, and the Gaussian kernels are full rank, so it cannot be folded into `q`/`k` either), so
`MaskedSelfAttention` always computes the scores explicitly (eager), whatever `config._attn_implementation` says.
"""

import torch
from torch import nn

from .transformer import SelfAttention

SIGMA_EPS = 1e-5  # the official `sigma ** 2 + 1e-5`


def gaussian_distance_kernel(grid_size: tuple[int, int]) -> torch.Tensor:
    """The fixed `(1, 1, N, N)` kernel `exp(-squared distance) ** 0.5` between the `N = h * w` patches of a
    row-major grid (the official `On_attention_gaussian_mask`, generalised to non-square grids)."""
    height, width = (int(s) for s in grid_size)
    if height < 1 or width < 1:
        raise ValueError(f"grid_size must be two positive ints, got {grid_size}")
    index = torch.arange(height * width, device="cpu")  # also under a meta-device context
    rows, cols = (index // width).float(), (index % width).float()
    squared = (cols[:, None] - cols[None, :]) ** 2 + (rows[:, None] - rows[None, :]) ** 2
    kernel = torch.exp(-squared) ** (1 / 2)
    return kernel.expand(1, 1, height * width, height * width).contiguous()


def gaussian_kernel_levels(grid_size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """`gaussian_distance_kernel` factored by squared distance: its `U` distinct values `(U,)` and the `(N, N)`
    index of each entry, so the mixture is evaluated on `U << N^2` values and gathered (entry-wise the same
    numbers as evaluating it on the full kernel)."""
    kernel = gaussian_distance_kernel(grid_size)[0, 0]
    height, width = (int(s) for s in grid_size)
    index = torch.arange(height * width, device="cpu")
    rows, cols = index // width, index % width
    squared = (cols[:, None] - cols[None, :]) ** 2 + (rows[:, None] - rows[None, :]) ** 2
    levels, inverse = torch.unique(squared, return_inverse=True)
    first = torch.full((len(levels),), squared.numel(), dtype=torch.long, device="cpu")
    first = first.scatter_reduce(0, inverse.flatten(), torch.arange(squared.numel(), device="cpu"), reduce="amin")
    return kernel.flatten()[first], inverse


def _check_grid(grid_size, num_prefix_tokens: int) -> tuple[tuple[int, int], int]:
    if len(tuple(grid_size)) != 2 or min(int(s) for s in grid_size) < 1:
        raise ValueError(f"grid_size must be two positive ints (patch rows, cols), got {grid_size}")
    if num_prefix_tokens < 0:
        raise ValueError(f"num_prefix_tokens must be >= 0, got {num_prefix_tokens}")
    return (int(grid_size[0]), int(grid_size[1])), int(num_prefix_tokens)


class GaussianMixtureMask(nn.Module):
    """The GMM: `num_kernels` Gaussians of the relative patch offset per head; parameters `sigma`, `alpha`
    (`(K, heads, 1, 1)`, official names). The official fixed kernel `mask` (`(1, 1, N, N)`) is kept as two
    non-persistent buffers, its distinct values `kernel_levels` `(U,)` and `kernel_index` `(N, N)`: the
    powers are taken on the `U` distinct squared distances only (the official code takes `K * heads * N^2`)."""

    def __init__(self, num_heads: int, num_kernels: int, grid_size: tuple[int, int], num_prefix_tokens: int = 0,
                 sigma_init_mean: float = 10.0, sigma_init_std: float = 10.0, alpha_init_std: float = 2.0):
        super().__init__()
        if num_kernels < 1:
            raise ValueError(f"the Gaussian mixture mask needs num_kernels >= 1, got {num_kernels}")
        if num_heads < 1:
            raise ValueError(f"num_heads must be >= 1, got {num_heads}")
        self.grid_size, self.num_prefix_tokens = _check_grid(grid_size, num_prefix_tokens)
        self.num_heads, self.num_kernels = num_heads, num_kernels
        self.num_tokens = self.num_prefix_tokens + self.grid_size[0] * self.grid_size[1]
        self.sigma_init_mean, self.sigma_init_std, self.alpha_init_std = sigma_init_mean, sigma_init_std, alpha_init_std
        self.sigma = nn.Parameter(torch.empty(num_kernels, num_heads, 1, 1))
        self.alpha = nn.Parameter(torch.empty(num_kernels, num_heads, 1, 1))
        # shared by every layer in the official code (and saved once per layer); rebuilt from the grid here
        levels, index = gaussian_kernel_levels(self.grid_size)
        self.register_buffer("kernel_levels", levels.to(self.sigma.device), persistent=False)
        self.register_buffer("kernel_index", index.to(self.sigma.device), persistent=False)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """The official initialisation: `sigma ~ N(10, 10^2)`, `alpha ~ N(0, 2^2)` (configurable), and the kernel."""
        self.sigma.normal_(self.sigma_init_mean, self.sigma_init_std)
        self.alpha.normal_(0.0, self.alpha_init_std)
        self.reset_buffers()

    @torch.no_grad()
    def reset_buffers(self) -> None:
        """Rebuild the kernel buffers from the grid (after meta-device initialisation)."""
        levels, index = gaussian_kernel_levels(self.grid_size)
        self.kernel_levels.copy_(levels)
        self.kernel_index.copy_(index)

    def weights(self) -> torch.Tensor:
        """The multiplicative mask `(heads, T, T)`; 1 on the rows and columns of prefix tokens."""
        alpha, sigma = self.alpha[..., 0], self.sigma[..., 0]  # (K, heads, 1)
        levels = torch.sum(alpha * self.kernel_levels ** (1 / (sigma**2 + SIGMA_EPS)), 0)  # (heads, U)
        mixture = levels[:, self.kernel_index]  # (heads, N, N)
        if self.num_prefix_tokens:
            p = self.num_prefix_tokens
            mixture = nn.functional.pad(mixture, (p, 0, p, 0), value=1.0)
        return mixture

    def extra_repr(self) -> str:
        return (f"heads={self.num_heads}, kernels={self.num_kernels}, grid={self.grid_size}, "
                f"prefix={self.num_prefix_tokens}")


class ElementwiseLearnableMask(nn.Module):
    """The ELM: one learnable `(T, T)` multiplier per token pair, shared by the heads (official `Simple_Mask`,
    parameter `mask`, zero-initialised by default)."""

    def __init__(self, grid_size: tuple[int, int], num_prefix_tokens: int = 0, init_value: float = 0.0):
        super().__init__()
        self.grid_size, self.num_prefix_tokens = _check_grid(grid_size, num_prefix_tokens)
        self.num_tokens = self.num_prefix_tokens + self.grid_size[0] * self.grid_size[1]
        self.init_value = init_value
        self.mask = nn.Parameter(torch.full((self.num_tokens, self.num_tokens), float(init_value)))

    @torch.no_grad()
    def reset_parameters(self) -> None:
        self.mask.fill_(self.init_value)

    def weights(self) -> torch.Tensor:
        """The multiplicative mask `(T, T)` (broadcast over heads)."""
        return self.mask

    def extra_repr(self) -> str:
        return f"grid={self.grid_size}, prefix={self.num_prefix_tokens}"


def build_attention_score_mask(mask_type: str, num_heads: int, grid_size: tuple[int, int], num_prefix_tokens: int = 0,
                               num_kernels: int = 5, sigma_init_mean: float = 10.0, sigma_init_std: float = 10.0,
                               alpha_init_std: float = 2.0, elm_init_value: float = 0.0) -> nn.Module | None:
    """`"gmm"` -> `GaussianMixtureMask`, `"elm"` -> `ElementwiseLearnableMask`, `"none"` -> None."""
    if mask_type == "gmm":
        return GaussianMixtureMask(num_heads, num_kernels, grid_size, num_prefix_tokens, sigma_init_mean,
                                   sigma_init_std, alpha_init_std)
    if mask_type == "elm":
        return ElementwiseLearnableMask(grid_size, num_prefix_tokens, elm_init_value)
    if mask_type == "none":
        return None
    raise ValueError(f"attention mask type must be 'gmm', 'elm' or 'none', got {mask_type!r}")


def multiplicative_mask_attention(module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                                  score_mask: torch.Tensor, scaling: float, dropout: float = 0.0
                                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax attention whose scaled scores are multiplied by `score_mask` (broadcastable to `(B, heads, T, T)`)
    before the softmax; `(B, heads, T, d)` inputs, returns `(B, T, heads, d)` and the probabilities."""
    scores = torch.matmul(query, key.transpose(-2, -1)).mul_(scaling)  # the official order: scale, then mask
    score_mask = score_mask.to(scores.dtype)
    if torch.is_grad_enabled() and (scores.requires_grad or score_mask.requires_grad):
        scores = score_mask * scores
    else:  # inference: no copy of the (B, heads, T, T) scores
        scores = scores.mul_(score_mask)
    probs = scores.softmax(dim=-1, dtype=torch.float32).to(query.dtype)
    probs = nn.functional.dropout(probs, p=dropout, training=module.training)
    return torch.matmul(probs, value).transpose(1, 2), probs


class MaskedSelfAttention(SelfAttention):
    """`layers.SelfAttention` (same `qkv`/`proj` parameters) with a multiplicative score mask in `self.mask`
    (a `GaussianMixtureMask` or an `ElementwiseLearnableMask`). Always explicit (eager) attention: see the module
    docstring. It takes no additive `attention_mask`."""

    def __init__(self, config, dim: int, num_heads: int, score_mask: nn.Module, qkv_bias: bool = True,
                 attention_dropout: float = 0.0, proj_dropout: float = 0.0):
        super().__init__(config, dim, num_heads, qkv_bias=qkv_bias, attention_dropout=attention_dropout,
                         proj_dropout=proj_dropout)
        self.mask = score_mask

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None,
                output_attentions: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        batch, tokens, dim = hidden_states.shape
        if tokens != self.mask.num_tokens:
            grid = self.mask.grid_size
            raise ValueError(
                f"the attention mask was built for {self.mask.num_prefix_tokens} prefix tokens + a {grid[0]}x{grid[1]} "
                f"patch grid ({self.mask.num_tokens} tokens) but got {tokens} tokens; masked attention works only at "
                f"the configured image_size, with every patch token"
            )
        if attention_mask is not None:
            raise ValueError("MaskedSelfAttention takes no additive attention_mask (its mask multiplies the scores)")
        qkv = self.qkv(hidden_states).reshape(batch, tokens, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        query, key, value = qkv.unbind(0)
        score_mask = self.mask.weights()
        out, probs = multiplicative_mask_attention(self, query, key, value, score_mask, self.scaling,
                                                   self.attention_dropout if self.training else 0.0)
        out = self.proj_drop(self.proj(out.reshape(batch, tokens, dim)))
        return out, (probs if output_attentions else None)


__all__ = ["gaussian_distance_kernel", "gaussian_kernel_levels", "GaussianMixtureMask", "ElementwiseLearnableMask",
           "build_attention_score_mask", "multiplicative_mask_attention", "MaskedSelfAttention", "SIGMA_EPS"]
