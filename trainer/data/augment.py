"""The study's augmentation as per-batch tensor ops (any device; CUDA-graph capturable).

The plan (which sample gets which op and orientation) is in :mod:`trainer.formats.augment_plan`
and re-exported here. This module applies it to a batch of uint8 patches.

**Gamma convention** (the one place it is defined): on values in [0, 1],
``out = in ** gamma``. This is the convention of MATLAB's ``imadjust(I, [], [], gamma)``,
scikit-image's ``adjust_gamma`` and torchvision's ``adjust_gamma``: gamma 1.2 darkens
(0.5 -> 0.435), gamma 1 is the identity.

**HSV ops** scale saturation by ``a`` and value by ``b`` (value clipped to 1; saturation
never exceeds 1 because a < 1), with HSV as in Python's ``colorsys``: V = max(R, G, B),
S = (V - min) / V. Hue is unchanged, and every channel of an HSV colour is
``V * (1 - S * k)`` with ``k`` a function of hue only, so the round trip RGB -> HSV -> scale
-> RGB has the closed form, per channel c::

    c' = (V' / V) * ((1 - a) * V + a * c),   V' = min(b * V, 1)   (and 0 where V = 0)

which needs no hue and no branches. :func:`rgb_to_hsv` / :func:`hsv_to_rgb` (full
conversions) are here too; the tests check the closed form against them and ``colorsys``.

Op 5 applies its HSV change first, then the B-channel gamma 1.3. Colour ops act on each pixel
independently, so they commute with the orientations. Values stay float32 in [0, 1]; nothing
is re-quantised to 8 bits between steps.

**Fast path.** :func:`augment_rows` does everything with one gather and a fixed number of
elementwise ops, on tensors of fixed shape: the batch's rows are gathered from the uint8 store
and oriented in one ``index_select`` through a (4, S*S) table of source pixels; the colour
op's parameters come from a (6, 5) table indexed by the op (for op 0 they make every step an
exact identity). No ``.item()``, no boolean-mask indexing, no data-dependent shapes: it runs
under ``torch.compile`` and inside a CUDA graph.
"""

from __future__ import annotations

import torch

from trainer.formats.augment_plan import (  # noqa: F401  (re-exported: the contract's names)
    AUGMENT_FACTOR,
    COLOUR_OPS,
    N_COLOUR_OPS,
    N_ORIENTATIONS,
    ORIENTATIONS,
    augmented_count,
    build_augmented_index,
    colour_subset_sizes,
    plain_index,
)

# Per colour op: (gamma R, gamma G, gamma B, saturation scale, value scale).
COLOUR_PARAMS: tuple[tuple[float, float, float, float, float], ...] = (
    (1.0, 1.0, 1.0, 1.0, 1.0),  # 0 none
    (1.2, 1.0, 1.0, 1.0, 1.0),  # 1 R gamma 1.2
    (1.0, 1.0, 1.2, 1.0, 1.0),  # 2 B gamma 1.2
    (1.2, 1.2, 1.2, 1.0, 1.0),  # 3 RGB gamma 1.2
    (1.0, 1.0, 1.0, 0.8, 1.1),  # 4 HSV S x0.8, V x1.1
    (1.0, 1.0, 1.3, 0.7, 1.1),  # 5 HSV S x0.7, V x1.1, then B gamma 1.3
)
_TINY = 1e-30  # V is 0 or >= 1/255; this only keeps 0/0 out of black pixels

_TABLES: dict[tuple[str, int], tuple[torch.Tensor, torch.Tensor]] = {}


def colour_params_table(device: torch.device | str = "cpu") -> torch.Tensor:
    """(6, 5) float32: per colour op, gamma R, G, B, saturation scale, value scale."""
    return torch.tensor(COLOUR_PARAMS, dtype=torch.float32, device=device)


def orientation_table(size: int = 40, device: torch.device | str = "cpu") -> torch.Tensor:
    """(4, size*size) int64: for each orientation, the source pixel (row-major) of each output
    pixel. 0 identity, 1 horizontal flip, 2 vertical flip, 3 transpose."""
    i = torch.arange(size).view(size, 1).expand(size, size)
    j = torch.arange(size).view(1, size).expand(size, size)
    last = size - 1
    src = [i * size + j, i * size + (last - j), (last - i) * size + j, j * size + i]
    return torch.stack([s.reshape(-1) for s in src]).to(device)


def tables(device: torch.device | str, size: int = 40) -> tuple[torch.Tensor, torch.Tensor]:
    """The (orientation table, colour table) for ``device``, made once and cached.

    Call this before capturing a CUDA graph (making a table copies from the host)."""
    dev = torch.device(device)
    key = (str(dev), size)
    if key not in _TABLES:
        _TABLES[key] = (orientation_table(size, dev), colour_params_table(dev))
    return _TABLES[key]


def _check_batch(patches_u8: torch.Tensor) -> None:
    shape = patches_u8.shape
    if len(shape) != 4 or shape[3] != 3 or shape[1] != shape[2]:
        raise ValueError(f"patches must be (B, S, S, 3), got {tuple(patches_u8.shape)}")
    if patches_u8.dtype != torch.uint8:
        raise ValueError(f"patches must be uint8, got {patches_u8.dtype}")


def to_float_chw(patches_u8: torch.Tensor) -> torch.Tensor:
    """(B, S, S, 3) uint8 -> (B, 3, S, S) float32 in [0, 1] (contiguous), value / 255."""
    _check_batch(patches_u8)
    x = patches_u8.permute(0, 3, 1, 2).to(torch.float32, memory_format=torch.contiguous_format)
    return x.div_(255.0)


def apply_colour(x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    """Colour ops on (B, 3, H, W) float in [0, 1]; ``params`` (B, 5) rows of COLOUR_PARAMS.

    In-place steps on fresh temporaries keep allocations (page faults, on CPU) few."""
    p = params[:, :, None, None]
    gamma, a, b = p[:, 0:3], p[:, 3:4], p[:, 4:5]
    v = x.amax(dim=1, keepdim=True)
    # exactly 1 for a = b = 1 and V > 0 (V / V), so op 0 leaves x unchanged bit for bit
    ratio = torch.clamp(v * b, max=1.0).div_(torch.clamp(v, min=_TINY))
    y = torch.addcmul(v * (1.0 - a), a, x)  # (1 - a) V + a c
    return y.mul_(ratio).pow_(gamma)


def gather_oriented(
    store_u8: torch.Tensor, rows: torch.Tensor, orient: torch.Tensor, table: torch.Tensor
) -> torch.Tensor:
    """Rows ``rows`` of a (N, S, S, 3) uint8 store, each in orientation ``orient[i]``, as
    (B, S, S, 3): one ``index_select`` of 3-byte pixels through ``orientation_table``, which
    gathers the batch and orients it in the same pass."""
    n, s = store_u8.shape[0], store_u8.shape[1]
    flat = (table[orient] + (rows * (s * s)).unsqueeze(1)).view(-1)
    pixels = store_u8.reshape(n * s * s, store_u8.shape[3])
    return pixels.index_select(0, flat).view(rows.shape[0], s, s, store_u8.shape[3])


def augment_rows(
    store_u8: torch.Tensor,
    rows: torch.Tensor,
    colour_op: torch.Tensor,
    orient: torch.Tensor,
    orient_table: torch.Tensor,
    colour_table: torch.Tensor,
) -> torch.Tensor:
    """Rows ``rows`` of the uint8 store, augmented: (B, 3, S, S) float32 in [0, 1]. A pure
    function of tensors, for ``torch.compile`` and CUDA-graph capture. Orientation is applied
    to the uint8 pixels while gathering them (a quarter of the bytes of float), which is
    equivalent because colour ops act on each pixel alone."""
    x = gather_oriented(store_u8, rows, orient, orient_table)
    x = x.permute(0, 3, 1, 2).to(torch.float32, memory_format=torch.contiguous_format)
    return apply_colour(x.div_(255.0), colour_table[colour_op])


def augment_core(
    patches_u8: torch.Tensor,
    colour_op: torch.Tensor,
    orient: torch.Tensor,
    orient_table: torch.Tensor,
    colour_table: torch.Tensor,
) -> torch.Tensor:
    """:func:`augment_batch` with its tables passed in (a pure function of tensors)."""
    rows = torch.arange(patches_u8.shape[0], device=patches_u8.device)
    return augment_rows(patches_u8, rows, colour_op, orient, orient_table, colour_table)


def augment_batch(
    patches_u8: torch.Tensor, colour_op: torch.Tensor, orient: torch.Tensor
) -> torch.Tensor:
    """(B, S, S, 3) uint8 -> (B, 3, S, S) float32 in [0, 1]: colour op ``colour_op[i]``
    (0..5) then orientation ``orient[i]`` (0..3) on sample i. ``colour_op`` and ``orient``
    are int64 tensors on the patches' device. Vectorised, no host sync, fixed shapes."""
    _check_batch(patches_u8)
    ot, ct = tables(patches_u8.device, patches_u8.shape[1])
    return augment_core(patches_u8, colour_op, orient, ot, ct)


def rgb_to_hsv(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB in [0, 1] -> HSV in [0, 1] as Python's ``colorsys`` defines it."""
    r, g, b = x[:, 0], x[:, 1], x[:, 2]
    v = torch.maximum(torch.maximum(r, g), b)
    mn = torch.minimum(torch.minimum(r, g), b)
    d = v - mn
    s = torch.where(v > 0, d / torch.clamp(v, min=_TINY), torch.zeros_like(v))
    dd = torch.clamp(d, min=_TINY)
    rc, gc, bc = (v - r) / dd, (v - g) / dd, (v - b) / dd
    h = torch.where(r == v, bc - gc, torch.where(g == v, 2.0 + rc - bc, 4.0 + gc - rc))
    h = torch.where(d > 0, torch.remainder(h / 6.0, 1.0), torch.zeros_like(h))
    return torch.stack([h, s, v], dim=1)


def hsv_to_rgb(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) HSV in [0, 1] -> RGB, as Python's ``colorsys`` defines it."""
    h, s, v = x[:, 0], x[:, 1], x[:, 2]
    h6 = h * 6.0
    i = torch.floor(h6)
    f = h6 - i
    i = torch.remainder(i, 6).to(torch.int64)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    choices = torch.stack([
        torch.stack([v, q, p, p, t, v]),  # R for sectors 0..5
        torch.stack([t, v, v, q, p, p]),  # G
        torch.stack([p, p, t, v, v, q]),  # B
    ])  # (3, 6, B, H, W)
    idx = i.unsqueeze(0).unsqueeze(0).expand(3, 1, *i.shape)
    return torch.gather(choices, 1, idx).squeeze(1).permute(1, 0, 2, 3)
