"""The settings a ViT-style config passes to every `TransformerBlock`, for models that build ViT blocks of their own
(LookupViT's compressed-token blocks, the Path-Ensemble ViT's path-exposing blocks)."""


def drop_path_rates(drop_path_rate: float, depth: int) -> list[float]:
    """Stochastic-depth rates rising linearly from 0 to `drop_path_rate` over `depth` blocks (timm's ViT rule)."""
    return [drop_path_rate * i / max(depth - 1, 1) for i in range(depth)]


def vit_block_kwargs(config) -> dict:
    """`TransformerBlock` keyword arguments (besides dim, heads and drop_path) from a `VitConfig`-like config."""
    return dict(mlp_ratio=config.mlp_ratio, qkv_bias=config.qkv_bias, layer_norm_eps=config.layer_norm_eps,
                layer_scale_init_value=config.layer_scale_init_value, hidden_act=config.hidden_act,
                attention_dropout=config.attention_probs_dropout_prob, dropout=config.hidden_dropout_prob)


__all__ = ["drop_path_rates", "vit_block_kwargs"]
