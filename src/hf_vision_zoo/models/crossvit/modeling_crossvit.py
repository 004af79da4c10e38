"""CrossViT: Cross-Attention Multi-Scale Vision Transformer for Image Classification (Chen, Fan, Panda, ICCV 2021).

Paper: https://arxiv.org/abs/2103.14899 - official code: https://github.com/IBM/CrossViT (Apache-2.0).

Two (or more) ViT branches see the same image at different patch sizes (12 and 16 px in every published model).
Each branch bicubic-resizes the input to its own `image_size` when the input has another size (the official
`F.interpolate(x, size=(s, s), mode="bicubic")`, align_corners=False), embeds patches (one strided convolution, or
the three-convolution stem of the dagger models), prepends its class token and adds learned positions. Each
multi-scale block runs every branch's transformer blocks (`layers.TransformerBlock`, timm's ViT block) and then
fuses the branches: the class token of branch i is projected to branch i+1's width, attends (as the only query)
over itself and branch i+1's patch tokens, and is projected back (cross-attention fusion, §3.3). The classifier
averages one linear head per branch applied to that branch's final (LayerNorm'ed) class token.

Proven equal to timm's `CrossVit` and to the official code by `tests/models/crossvit/`.

Differences from the official code, none of which changes the output:
- the official code resizes a branch's input when its *height* differs from the branch size (and then requires a
  square image); here, as in timm, a branch resizes whenever height or width differs, so any image of at least one
  patch works; smaller images are rejected;
- the key and value projections of the cross-attention are one fused `kv` linear (the converter concatenates the
  official `wk`/`wv`);
- attention runs through transformers' attention interface (SDPA by default).

Outputs: the branches have different token counts and widths, so `CrossVitModel` returns them per branch
(`branch_last_hidden_states`) and, for the single-tensor API, packs them into one `(batch, 1 + N_0 + N_1,
D_0 + D_1)` tensor: token 0 is the concatenation of the class tokens (the classifier's features, also
`pooler_output`), then branch 0's patch tokens in channels `[0, D_0)` and branch 1's in `[D_0, D_0 + D_1)`, zeros
elsewhere. `hidden_states` use the same packing (embedding output, then each multi-scale block, before the final
norms). `attentions[k]` is the self-attention of the last block of the last (large-patch) branch in multi-scale
block k; `cross_attentions[k]` holds each branch's class-token cross-attention `(batch, heads, 1, 1 + N_other)`.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.modeling_outputs import ImageClassifierOutput
from transformers.utils import ModelOutput
from transformers.utils.generic import can_return_tuple

from ...layers import DropPath, PatchEmbed, TransformerBlock, get_cpu_tuned_attention_function
from ...modeling_utils import ZooPreTrainedModel, check_pixel_values, image_classifier_output, init_common_weights
from .configuration_crossvit import CrossVitConfig


@dataclass
class CrossVitModelOutput(ModelOutput):
    r"""
    last_hidden_state: `(batch, 1 + sum(N_i), sum(D_i))`, the branches' normalised tokens packed as described in the
        module docstring (token 0: the concatenated class tokens).
    pooler_output: `(batch, sum(D_i))`, the concatenated normalised class tokens (what the classifier heads read).
    branch_last_hidden_states: per branch, its normalised tokens `(batch, 1 + N_i, D_i)` (class token first).
    hidden_states: the packed embedding output, then the packed output of each multi-scale block.
    attentions: per multi-scale block, the self-attention of the last block of the last branch.
    cross_attentions: per multi-scale block, per branch, the class-token cross-attention `(batch, heads, 1, 1 + N)`.
    """

    last_hidden_state: torch.FloatTensor | None = None
    pooler_output: torch.FloatTensor | None = None
    branch_last_hidden_states: tuple[torch.FloatTensor, ...] | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None
    cross_attentions: tuple[tuple[torch.FloatTensor, ...], ...] | None = None


def pack_branches(branches: list[torch.Tensor]) -> torch.Tensor:
    """`[(B, 1 + N_i, D_i)]` -> `(B, 1 + sum N_i, sum D_i)`: class tokens side by side in token 0, each branch's
    patch tokens in its own token range and channel range (zeros elsewhere)."""
    batch = branches[0].shape[0]
    tokens = 1 + sum(x.shape[1] - 1 for x in branches)
    channels = sum(x.shape[2] for x in branches)
    packed = branches[0].new_zeros(batch, tokens, channels)
    token, channel = 1, 0
    for x in branches:
        n, d = x.shape[1] - 1, x.shape[2]
        packed[:, 0, channel:channel + d] = x[:, 0]
        packed[:, token:token + n, channel:channel + d] = x[:, 1:]
        token, channel = token + n, channel + d
    return packed


class CrossVitConvPatchEmbed(nn.Module):
    """The dagger models' patch embedding: three convolutions with ReLUs (7x7/4, then 3x3/3 and 3x3/1 for 12 px
    patches, 3x3/2 twice for 16 px patches), widths D/4, D/2, D. Keys `proj.0`, `proj.2`, `proj.4` as official."""

    def __init__(self, patch_size: int, num_channels: int, embed_dim: int):
        super().__init__()
        second, third = ((3, 0), (1, 1)) if patch_size == 12 else ((2, 1), (2, 1))
        self.proj = nn.Sequential(
            nn.Conv2d(num_channels, embed_dim // 4, kernel_size=7, stride=4, padding=3),
            nn.ReLU(inplace=True),
            nn.Conv2d(embed_dim // 4, embed_dim // 2, kernel_size=3, stride=second[0], padding=second[1]),
            nn.ReLU(inplace=True),
            nn.Conv2d(embed_dim // 2, embed_dim, kernel_size=3, stride=third[0], padding=third[1]),
        )

    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        x = self.proj(pixel_values)
        return x.flatten(2).transpose(1, 2), (x.shape[2], x.shape[3])


class CrossVitBranchEmbeddings(nn.Module):
    """One branch's input: resize to the branch size, patch embedding, class token, learned positions."""

    def __init__(self, config: CrossVitConfig, branch: int):
        super().__init__()
        self.image_size = config.image_size[branch]
        patch, dim = config.patch_size[branch], config.embed_dim[branch]
        if config.multi_conv:
            self.patch_embed = CrossVitConvPatchEmbed(patch, config.num_channels, dim)
        else:
            self.patch_embed = PatchEmbed(patch, config.num_channels, dim, use_norm=False, pad_to_patch=False)
        grid = config.grid_sizes()[branch]
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.position_embeddings = nn.Parameter(torch.zeros(1, 1 + grid * grid, dim))

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        size = self.image_size
        if pixel_values.shape[-2] != size or pixel_values.shape[-1] != size:
            pixel_values = F.interpolate(pixel_values, size=(size, size), mode="bicubic", align_corners=False)
        tokens, _ = self.patch_embed(pixel_values)
        tokens = torch.cat((self.cls_token.expand(tokens.shape[0], -1, -1), tokens), dim=1)
        return tokens + self.position_embeddings


class CrossVitEmbeddings(nn.Module):
    """Every branch's token sequence `(B, 1 + N_i, D_i)` from one image batch."""

    def __init__(self, config: CrossVitConfig):
        super().__init__()
        self.config = config
        self.branches = nn.ModuleList(CrossVitBranchEmbeddings(config, i) for i in range(config.num_branches))
        self.dropout = nn.Dropout(config.hidden_dropout_prob) if config.hidden_dropout_prob > 0 else nn.Identity()

    def forward(self, pixel_values: torch.Tensor) -> list[torch.Tensor]:
        height, width = pixel_values.shape[-2:]
        smallest = max(self.config.patch_size)
        if min(height, width) < smallest:
            raise ValueError(
                f"An image of {height}x{width} px cannot feed every CrossViT branch: it is smaller than one patch "
                f"({smallest}x{smallest} px, patch_size {self.config.patch_size}). Each branch resizes the image to "
                f"its own size (image_size {self.config.image_size}); use the image processor, which makes "
                f"{self.config.input_size}x{self.config.input_size} images."
            )
        return [self.dropout(branch(pixel_values)) for branch in self.branches]


class CrossVitCrossAttention(nn.Module):
    """Multi-head attention with the class token (token 0) as the only query over all tokens (§3.3): linear in the
    number of tokens. Keys `query`, `kv` (fused key/value) and `proj`."""

    def __init__(self, config: CrossVitConfig, dim: int, num_heads: int):
        super().__init__()
        self.config = config
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scaling = self.head_dim**-0.5
        self.is_causal = False
        self.attention_dropout = config.attention_probs_dropout_prob
        self.query = nn.Linear(dim, dim, bias=config.qkv_bias)
        self.kv = nn.Linear(dim, 2 * dim, bias=config.qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(config.hidden_dropout_prob) if config.hidden_dropout_prob > 0 else nn.Identity()

    def forward(self, hidden_states: torch.Tensor, output_attentions: bool = False):
        batch, tokens, dim = hidden_states.shape
        query = self.query(hidden_states[:, :1]).view(batch, 1, self.num_heads, self.head_dim).transpose(1, 2)
        key, value = self.kv(hidden_states).view(batch, tokens, 2, self.num_heads, self.head_dim).permute(
            2, 0, 3, 1, 4).unbind(0)
        attention = get_cpu_tuned_attention_function(self.config, query, key, None, output_attentions)
        out, probs = attention(self, query, key, value, None, scaling=self.scaling,
                               dropout=self.attention_dropout if self.training else 0.0)
        return self.proj_drop(self.proj(out.reshape(batch, 1, dim))), (probs if output_attentions else None)


class CrossVitCrossAttentionLayer(nn.Module):
    """`cls + DropPath(CrossAttention(LN(x)))`: returns the updated class token only `(B, 1, D)` (no MLP)."""

    def __init__(self, config: CrossVitConfig, dim: int, num_heads: int, drop_path: float):
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=config.layer_norm_eps)
        self.attn = CrossVitCrossAttention(config, dim, num_heads)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, hidden_states: torch.Tensor, output_attentions: bool = False):
        attended, probs = self.attn(self.norm(hidden_states), output_attentions)
        return hidden_states[:, :1] + self.drop_path(attended), probs


class CrossVitFusion(nn.Module):
    """Cross-attention fusion into branch i: project its class token to branch j = i + 1's width (LN, GELU,
    linear), let it attend over branch j's patch tokens, project back (LN, GELU, linear)."""

    def __init__(self, config: CrossVitConfig, branch: int, num_layers: int, drop_path: float):
        super().__init__()
        other = (branch + 1) % config.num_branches
        dim, other_dim = config.embed_dim[branch], config.embed_dim[other]
        self.act = ACT2FN[config.hidden_act]
        self.proj_norm = nn.LayerNorm(dim, eps=config.layer_norm_eps)
        self.proj = nn.Linear(dim, other_dim)
        self.layers = nn.ModuleList(
            CrossVitCrossAttentionLayer(config, other_dim, config.num_heads[other], drop_path)
            for _ in range(num_layers)
        )
        self.revert_norm = nn.LayerNorm(other_dim, eps=config.layer_norm_eps)
        self.revert_proj = nn.Linear(other_dim, dim)

    def forward(self, cls_token: torch.Tensor, other_patch_tokens: torch.Tensor, output_attentions: bool = False):
        x = torch.cat((self.proj(self.act(self.proj_norm(cls_token))), other_patch_tokens), dim=1)
        probs = None
        for layer in self.layers:  # as officially, a second layer sees only the class token the first returned
            x, probs = layer(x, output_attentions)
        return self.revert_proj(self.act(self.revert_norm(x))), probs


class CrossVitMultiScaleBlock(nn.Module):
    """Each branch's transformer blocks, then the cross-attention fusion of every branch's class token."""

    def __init__(self, config: CrossVitConfig, index: int):
        super().__init__()
        depth = config.depth[index]
        rates = config.drop_path_rates()[index]
        self.branches = nn.ModuleList(
            nn.ModuleList(
                TransformerBlock(config, config.embed_dim[b], config.num_heads[b], mlp_ratio=config.mlp_ratio[b],
                                 qkv_bias=config.qkv_bias, drop_path=rates[j], layer_norm_eps=config.layer_norm_eps,
                                 hidden_act=config.hidden_act, attention_dropout=config.attention_probs_dropout_prob,
                                 dropout=config.hidden_dropout_prob)
                for j in range(depth[b])
            )
            for b in range(config.num_branches)
        )
        self.fusions = nn.ModuleList(
            CrossVitFusion(config, b, max(depth[-1], 1), rates[-1]) for b in range(config.num_branches)
        )

    def forward(self, branches: list[torch.Tensor], output_attentions: bool = False):
        outputs, probs = [], None
        for x, blocks in zip(branches, self.branches):
            for block in blocks:
                x, probs = block(x, None, output_attentions)
            outputs.append(x)
        fused, cross = [], []
        count = len(outputs)
        # without autograd the new class token overwrites the old one in place (fusion i + 1 reads only the patch
        # tokens of branch i), which saves copying every branch's tokens in every block
        in_place = not (torch.is_grad_enabled() and any(x.requires_grad for x in outputs))
        for i, fusion in enumerate(self.fusions):
            cls_token, cross_probs = fusion(outputs[i][:, :1], outputs[(i + 1) % count][:, 1:], output_attentions)
            if in_place:
                outputs[i][:, :1] = cls_token
                fused.append(outputs[i])
            else:
                fused.append(torch.cat((cls_token, outputs[i][:, 1:]), dim=1))
            cross.append(cross_probs)
        return fused, probs, tuple(cross)


class CrossVitPreTrainedModel(ZooPreTrainedModel):
    config: CrossVitConfig
    base_model_prefix = "crossvit"
    _no_split_modules = ["TransformerBlock", "CrossVitFusion"]

    @torch.no_grad()
    def _init_weights(self, module):
        """The official initialisation: truncated normal (std `initializer_range`) for linear weights, class tokens
        and position embeddings; zero biases; unit LayerNorms; PyTorch's default for the convolutions."""
        std = self.config.initializer_range
        if init_common_weights(module, std):
            return
        if isinstance(module, nn.Conv2d):
            super()._init_weights(module)
        elif isinstance(module, CrossVitBranchEmbeddings):
            init.trunc_normal_(module.cls_token, std=std)
            init.trunc_normal_(module.position_embeddings, std=std)


class CrossVitModel(CrossVitPreTrainedModel):
    """The CrossViT encoder: per-branch normalised tokens, packed tokens and the concatenated class tokens."""

    def __init__(self, config: CrossVitConfig):
        super().__init__(config)
        self.embeddings = CrossVitEmbeddings(config)
        self.blocks = nn.ModuleList(CrossVitMultiScaleBlock(config, k) for k in range(config.num_layers))
        self.norms = nn.ModuleList(nn.LayerNorm(dim, eps=config.layer_norm_eps) for dim in config.embed_dim)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.embeddings.branches[0].patch_embed

    def encode(self, pixel_values: torch.Tensor, output_hidden_states: bool = False,
               output_attentions: bool = False) -> CrossVitModelOutput:
        """The branches' normalised tokens (`branch_last_hidden_states`) and, on request, packed hidden states and
        attentions; leaves out the packed `last_hidden_state` (what the classifier uses, without that copy)."""
        check_pixel_values(pixel_values, self.config.num_channels)
        branches = self.embeddings(pixel_values)
        hidden_states = [pack_branches(branches)] if output_hidden_states else None
        attentions, cross_attentions = ([], []) if output_attentions else (None, None)
        for block in self.blocks:
            branches, probs, cross = block(branches, output_attentions)
            if output_hidden_states:
                hidden_states.append(pack_branches(branches))
            if output_attentions:
                attentions.append(probs)
                cross_attentions.append(cross)
        branches = tuple(norm(x) for norm, x in zip(self.norms, branches))
        return CrossVitModelOutput(
            branch_last_hidden_states=branches,
            hidden_states=tuple(hidden_states) if output_hidden_states else None,
            attentions=tuple(attentions) if output_attentions else None,
            cross_attentions=tuple(cross_attentions) if output_attentions else None,
        )

    @can_return_tuple
    def forward(self, pixel_values: torch.Tensor | None = None, output_hidden_states: bool | None = None,
                output_attentions: bool | None = None, **kwargs) -> CrossVitModelOutput:
        output_hidden_states = self.config.output_hidden_states if output_hidden_states is None else output_hidden_states
        output_attentions = self.config.output_attentions if output_attentions is None else output_attentions
        out = self.encode(pixel_values, output_hidden_states, output_attentions)
        branches = out.branch_last_hidden_states
        return CrossVitModelOutput(
            last_hidden_state=pack_branches(list(branches)),
            pooler_output=torch.cat([x[:, 0] for x in branches], dim=-1),
            branch_last_hidden_states=branches, hidden_states=out.hidden_states, attentions=out.attentions,
            cross_attentions=out.cross_attentions,
        )


class CrossVitForImageClassification(CrossVitPreTrainedModel):
    """CrossViT with the official head: a linear classifier per branch on its class token, logits averaged."""

    def __init__(self, config: CrossVitConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.crossvit = CrossVitModel(config)
        self.classifiers = nn.ModuleList(
            nn.Linear(dim, config.num_labels) if config.num_labels > 0 else nn.Identity() for dim in config.embed_dim
        )
        self.post_init()

    @can_return_tuple
    def forward(self, pixel_values: torch.Tensor | None = None, labels: torch.Tensor | None = None,
                output_hidden_states: bool | None = None, output_attentions: bool | None = None,
                **kwargs) -> ImageClassifierOutput:
        output_hidden_states = self.config.output_hidden_states if output_hidden_states is None else output_hidden_states
        output_attentions = self.config.output_attentions if output_attentions is None else output_attentions
        outputs = self.crossvit.encode(pixel_values, output_hidden_states, output_attentions)
        tokens = [x[:, 0] for x in outputs.branch_last_hidden_states]
        if self.num_labels > 0:
            logits = torch.stack([head(x) for head, x in zip(self.classifiers, tokens)]).mean(dim=0)
        else:  # no head: the concatenated class tokens, as timm's pre-logits
            logits = torch.cat(tokens, dim=-1)
        return image_classifier_output(self, logits, labels, outputs, **kwargs)


__all__ = ["CrossVitPreTrainedModel", "CrossVitModel", "CrossVitForImageClassification", "pack_branches"]
