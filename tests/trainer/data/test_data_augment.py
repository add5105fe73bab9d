"""The study's augmentation: the plan (9.6x), each colour op against a direct per-pixel
computation (NumPy and colorsys), the orientations against NumPy, and the fast path's
freedom from host syncs and data-dependent shapes."""

import colorsys

import numpy as np
import pytest
import torch

from trainer.data.augment import (
    AUGMENT_FACTOR,
    augment_batch,
    augmented_count,
    build_augmented_index,
    hsv_to_rgb,
    rgb_to_hsv,
    to_float_chw,
)

torch.set_num_threads(1)

# A few pixels that exercise every branch: black, white, grey, pure and mixed hues, each
# channel being the maximum, near-saturated values that V x1.1 clips.
PIXELS = np.array([
    [0, 0, 0], [255, 255, 255], [128, 128, 128], [255, 0, 0], [0, 255, 0], [0, 0, 255],
    [200, 40, 90], [30, 220, 100], [60, 70, 250], [250, 250, 10], [1, 2, 3], [240, 236, 238],
    [93, 12, 12], [12, 93, 50],
], dtype=np.uint8)


def _gamma(v, g):  # the documented convention: out = in ** gamma on [0, 1]
    return v ** g


def _hsv_scale(rgb, s_scale, v_scale):
    h, s, v = colorsys.rgb_to_hsv(*rgb)
    return np.array(colorsys.hsv_to_rgb(h, s * s_scale, min(v * v_scale, 1.0)))


def reference(pixel_u8, op):
    """Op ``op`` on one pixel, written out directly from the study's description."""
    p = pixel_u8.astype(np.float64) / 255.0
    if op == 1:
        p[0] = _gamma(p[0], 1.2)
    elif op == 2:
        p[2] = _gamma(p[2], 1.2)
    elif op == 3:
        p = _gamma(p, 1.2)
    elif op == 4:
        p = _hsv_scale(p, 0.8, 1.1)
    elif op == 5:
        p = _hsv_scale(p, 0.7, 1.1)
        p[2] = _gamma(p[2], 1.3)
    return p


def _batch_of_pixels():
    """One 40x40 patch per pixel value (so each pixel goes through the batch code)."""
    return torch.from_numpy(np.broadcast_to(PIXELS[:, None, None, :], (len(PIXELS), 40, 40, 3))
                            .copy())


@pytest.mark.parametrize("op", [0, 1, 2, 3, 4, 5])
def test_each_colour_op_matches_a_direct_computation(op):
    batch = _batch_of_pixels()
    n = len(PIXELS)
    out = augment_batch(batch, torch.full((n,), op), torch.zeros(n, dtype=torch.int64))
    assert out.shape == (n, 3, 40, 40) and out.dtype == torch.float32
    got = out[:, :, 17, 5].double().numpy()
    want = np.stack([reference(p, op) for p in PIXELS])
    np.testing.assert_allclose(got, want, atol=2e-6)
    if op:
        assert not np.allclose(got, PIXELS / 255.0)  # the op really changes colours


def test_gamma_convention_darkens():
    out = augment_batch(torch.full((1, 40, 40, 3), 128, dtype=torch.uint8),
                        torch.tensor([3]), torch.tensor([0]))
    assert out[0, 0, 0, 0].item() == pytest.approx((128 / 255) ** 1.2, abs=1e-6)
    assert out[0, 0, 0, 0].item() < 128 / 255


def test_op_zero_in_original_orientation_is_exactly_the_plain_conversion():
    x = torch.randint(0, 256, (8, 40, 40, 3), dtype=torch.uint8)
    out = augment_batch(x, torch.zeros(8, dtype=torch.int64), torch.zeros(8, dtype=torch.int64))
    plain = to_float_chw(x)
    assert torch.equal(out, plain)
    np.testing.assert_array_equal(plain.numpy(), x.numpy().transpose(0, 3, 1, 2) / np.float32(255))


def test_orientations_are_flips_and_transpose():
    x = torch.randint(0, 256, (4, 40, 40, 3), dtype=torch.uint8)
    out = augment_batch(x, torch.zeros(4, dtype=torch.int64), torch.arange(4)).numpy()
    chw = x.numpy().transpose(0, 3, 1, 2) / np.float32(255)
    np.testing.assert_array_equal(out[0], chw[0])
    np.testing.assert_array_equal(out[1], chw[1][:, :, ::-1])  # horizontal: left-right
    np.testing.assert_array_equal(out[2], chw[2][:, ::-1, :])  # vertical: up-down
    np.testing.assert_array_equal(out[3], chw[3].transpose(0, 2, 1))


def test_mixed_batch_applies_each_samples_own_op_and_orientation():
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, (30, 40, 40, 3), dtype=np.uint8)
    ops, orients = rng.integers(0, 6, 30), rng.integers(0, 4, 30)
    out = augment_batch(torch.from_numpy(x), torch.from_numpy(ops), torch.from_numpy(orients))
    flips = [lambda a: a, lambda a: a[:, ::-1], lambda a: a[::-1, :],
             lambda a: a.transpose(1, 0, 2)]
    for i in range(0, 30, 7):
        img = flips[orients[i]](x[i])
        for r, c in [(0, 0), (13, 29), (39, 1)]:
            want = reference(img[r, c], ops[i])
            np.testing.assert_allclose(out[i, :, r, c].double().numpy(), want, atol=2e-6)


def test_hsv_conversions_agree_with_colorsys():
    rng = np.random.default_rng(2)
    rgb = np.concatenate([PIXELS, rng.integers(0, 256, (200, 3), dtype=np.uint8)]) / 255.0
    x = torch.from_numpy(rgb.T[None, :, :, None].astype(np.float32))  # (1, 3, N, 1)
    hsv = rgb_to_hsv(x)[0, :, :, 0].double().numpy().T
    want = np.array([colorsys.rgb_to_hsv(*p) for p in rgb])
    np.testing.assert_allclose(hsv, want, atol=3e-6)
    back = hsv_to_rgb(torch.from_numpy(want.T[None, :, :, None].astype(np.float32)))
    np.testing.assert_allclose(back[0, :, :, 0].double().numpy().T, rgb, atol=3e-6)


def test_augmented_index_is_nine_point_six_times_the_training_set():
    idx = build_augmented_index(1000, seed=42)
    assert idx.shape == (9600, 3) and idx.dtype == np.int64
    assert len(idx) == AUGMENT_FACTOR * 1000 == augmented_count(1000)
    ops = idx[idx[:, 2] == 0, 1]  # one row per (sample, op) in orientation 0
    assert np.bincount(ops).tolist() == [1000, 200, 300, 500, 200, 200]
    assert np.bincount(idx[:, 2]).tolist() == [2400] * 4
    # every original appears once per orientation; each op's subset has distinct samples
    for op in range(6):
        rows = idx[idx[:, 1] == op]
        for o in range(4):
            s = rows[rows[:, 2] == o, 0]
            assert len(np.unique(s)) == len(s)
    assert np.array_equal(np.unique(idx[idx[:, 1] == 0, 0]), np.arange(1000))
    assert len(build_augmented_index(1234)) == augmented_count(1234)
    assert abs(augmented_count(1234) - 9.6 * 1234) <= 10


def test_augmented_index_is_seeded():
    a, b = build_augmented_index(500, 42), build_augmented_index(500, 42)
    c = build_augmented_index(500, 1)
    assert np.array_equal(a, b) and not np.array_equal(a, c) and a.shape == c.shape


def test_fast_path_has_no_host_sync_or_data_dependent_shape():
    """Under FakeTensorMode any .item(), boolean-mask indexing or nonzero() raises: the
    batch function must trace with fixed shapes (the condition for CUDA-graph capture)."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    from trainer.data.augment import augment_core, tables
    from trainer.data.loader import gather_batch

    ot, ct = tables("cpu")
    real = [torch.zeros(100, 40, 40, 3, dtype=torch.uint8), torch.zeros(100, dtype=torch.int64),
            torch.from_numpy(build_augmented_index(100)), torch.arange(16), ot, ct,
            torch.zeros(3, 40, 40)]
    with FakeTensorMode(allow_non_fake_inputs=False) as mode:
        fake = [mode.from_tensor(t) for t in real]
        x, y = gather_batch(*fake, augment=True)
        assert x.shape == (16, 3, 40, 40) and y.shape == (16,)
        z = augment_core(fake[0][:16], fake[1][:16], fake[1][:16], fake[4], fake[5])
        assert z.shape == (16, 3, 40, 40)


def test_closed_form_hsv_op_equals_the_full_round_trip():
    """The fast HSV op (no hue) equals RGB -> HSV -> scale S and V -> RGB done in full."""
    from trainer.data.augment import apply_colour, colour_params_table

    rng = np.random.default_rng(5)
    x = torch.from_numpy(rng.integers(0, 256, (6, 3, 8, 8)).astype(np.float32) / 255)
    for op, (s_scale, v_scale) in {4: (0.8, 1.1), 5: (0.7, 1.1)}.items():
        hsv = rgb_to_hsv(x)
        hsv[:, 1] *= s_scale
        hsv[:, 2] = torch.clamp(hsv[:, 2] * v_scale, max=1.0)
        full = hsv_to_rgb(hsv)
        if op == 5:
            full[:, 2] = full[:, 2] ** 1.3
        fast = apply_colour(x, colour_params_table()[torch.full((6,), op)])
        torch.testing.assert_close(fast, full, atol=3e-6, rtol=0)
