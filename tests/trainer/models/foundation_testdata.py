"""Small stand-ins for the foundation backbones, shared by their tests (not a test module).

Each keeps the real backbone's timm family and recipe (ConvStem, init_values...) with few layers
and a small input, so a forward and backward take milliseconds and no weights are downloaded.
"""

SMALL = {
    "uni": dict(arch="vit_tiny_patch16_224", arch_kwargs={"depth": 2}, input_size=32),
    "ctranspath": dict(arch_kwargs={"embed_dim": 16, "depths": (1, 1, 1, 1),
                                    "num_heads": (1, 1, 2, 4), "window_size": 4}, input_size=64),
    "resnetrs50": dict(arch_kwargs={"layers": (1, 1, 1, 1)}, input_size=64),
}
