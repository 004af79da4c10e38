"""The transformer feed-forward block: Linear -> activation -> dropout -> Linear -> dropout."""

from torch import nn
from transformers.activations import ACT2FN


class Mlp(nn.Module):
    """Two-layer MLP with names `fc1`/`fc2` (the layout used by ViT, Swin and most of the zoo's papers)."""

    def __init__(self, in_features: int, hidden_features: int, out_features: int | None = None,
                 hidden_act: str = "gelu", dropout: float = 0.0, bias: bool = True):
        super().__init__()
        out_features = out_features or in_features
        self.fc1 = nn.Linear(in_features, hidden_features, bias=bias)
        self.act = ACT2FN[hidden_act]
        self.fc2 = nn.Linear(hidden_features, out_features, bias=bias)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x):
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))
