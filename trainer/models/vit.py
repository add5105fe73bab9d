"""CustomViT: a Vision Transformer built for 40x40 patches (the study's best model).

Written for speed because it is the flagship and the training loop compiles it and captures it
in CUDA graphs: one fused qkv Linear per block, ``F.scaled_dot_product_attention`` (flash /
memory-efficient kernels on GPU, head dim 40 is a multiple of 8), patchify by reshape + Linear
(no im2col, no conv), static shapes throughout, no Python loop over tokens. Works under
``torch.compile`` and bf16 autocast.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from trainer.formats.catalog import model_info
from trainer.formats.model_schema import DROPOUT, Int, schema_for_catalog
from trainer.models._registry import register_model
from trainer.models.layers import CellClassifier, LinearHead


class PatchEmbed(nn.Module):
    """Cut the image into non-overlapping ``patch x patch`` squares and project each to ``dim``.

    Equivalent to a conv with kernel = stride = patch (the weight is laid out (dim, C*p*p) in
    the conv's (C, kh, kw) order, so a conv patch embedding's weights load after a reshape).
    """

    def __init__(self, img_size: int = 40, patch: int = 8, in_chans: int = 3, dim: int = 160):
        super().__init__()
        if img_size % patch:
            raise ValueError(f"image size {img_size} is not a multiple of the patch size {patch}")
        self.img_size, self.patch, self.grid = img_size, patch, img_size // patch
        self.num_patches = self.grid * self.grid
        self.proj = nn.Linear(in_chans * patch * patch, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, _, _ = x.shape
        g, p = self.grid, self.patch
        x = x.reshape(b, c, g, p, g, p).permute(0, 2, 4, 1, 3, 5).reshape(b, g * g, c * p * p)
        return self.proj(x)


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int, attn_drop: float = 0.0, proj_drop: float = 0.0):
        super().__init__()
        if dim % heads:
            raise ValueError(f"embedding {dim} is not divisible by {heads} heads")
        self.heads, self.head_dim = heads, dim // heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.attn_drop = attn_drop
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        x = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.attn_drop if self.training else 0.0)
        return self.proj_drop(self.proj(x.transpose(1, 2).reshape(b, n, c)))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int, drop: float = 0.0):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class Block(nn.Module):
    """Pre-norm transformer block."""

    def __init__(self, dim: int, heads: int, mlp_dim: int, drop: float = 0.0,
                 attn_drop: float = 0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, attn_drop, drop)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, mlp_dim, drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class CustomViT(CellClassifier):
    """8x8 patches -> 25 tokens of 160 dims, a class token and learned position embeddings
    (26 x 160), six pre-norm blocks (4 heads of 40 dims, MLP 640 with GELU), a final LayerNorm on
    the class token (the embedding, 160) and a linear classifier. Truncated-normal init (std
    0.02), zero biases.

    ``dropout`` 0.2 is applied where timm's ``drop_rate`` acts: after adding the position
    embeddings, on the attention projection, inside and after the MLP, and before the classifier.
    Attention-weight dropout (``attn_dropout``) is 0. 1,893,776 parameters at 16 classes (study:
    1.89 M).
    """

    def __init__(self, num_classes: int, img_size: int = 40, patch: int = 8, dim: int = 160,
                 depth: int = 6, heads: int = 4, mlp_dim: int = 640, dropout: float = 0.2,
                 attn_dropout: float = 0.0):
        super().__init__()
        self.num_classes = num_classes
        self.patch_embed = PatchEmbed(img_size, patch, 3, dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, self.patch_embed.num_patches + 1, dim))
        self.pos_drop = nn.Dropout(dropout)
        self.blocks = nn.Sequential(
            *[Block(dim, heads, mlp_dim, dropout, attn_dropout) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.num_features = dim
        self.head = LinearHead(dim, num_classes, dropout)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.apply(self._init)

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        t = self.patch_embed(x)
        t = torch.cat([self.cls_token.expand(t.shape[0], -1, -1), t], dim=1)
        t = self.blocks(self.pos_drop(t + self.pos_embed))
        return self.norm(t[:, 0])


#: what a model file may set (the study's 6 x 160 x 4 heads, MLP 640, with headroom; the
#: parameter cap, 4x the study's model, bounds the combination)
VIT_SCHEMA = schema_for_catalog(model_info("custom_vit").params, {
    "dropout": DROPOUT, "attn_dropout": DROPOUT, "depth": Int(1, 24), "dim": Int(8, 1024),
    "heads": Int(1, 16), "mlp_dim": Int(1, 4096)})


@register_model(family="vit", schema=VIT_SCHEMA)
def custom_vit(num_classes: int, dropout: float = 0.2, attn_dropout: float = 0.0,
               depth: int = 6, dim: int = 160, heads: int = 4, mlp_dim: int = 640) -> CustomViT:
    """CustomViT: 8x8 patches, 160-dim, 6 pre-norm blocks x 4 heads, MLP 640, class token."""
    return CustomViT(num_classes, dim=dim, depth=depth, heads=heads, mlp_dim=mlp_dim,
                     dropout=dropout, attn_dropout=attn_dropout)
