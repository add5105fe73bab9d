"""Display maths: tone curves and colour deconvolution for the view (cellviewer.core.display)."""

from __future__ import annotations

import numpy as np
import pytest

from cellviewer.core.display import (
    RGB_FROM_HED,
    DisplaySettings,
    adjust_bgrx_inplace,
    adjust_rgb,
    magnification_zoom,
    stain_amounts,
    tone_lut,
)


def _stained(amounts: np.ndarray) -> np.ndarray:
    """Pixels of known stain amounts (h, w, 3), by the Beer-Lambert law the module inverts."""
    od = amounts @ RGB_FROM_HED
    return np.clip(np.round(np.exp(-od) * 256.0 - 1.0), 0, 255).astype(np.uint8)


def test_identity_is_the_image_itself():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (8, 9, 3), dtype=np.uint8)
    assert DisplaySettings().identity
    assert np.array_equal(adjust_rgb(rgb, DisplaySettings()), rgb)
    assert np.array_equal(tone_lut(DisplaySettings()), np.arange(256))


def test_brightness_contrast_gamma():
    lut = tone_lut(DisplaySettings(brightness=0.2))
    assert lut[0] == 51 and lut[255] == 255
    lut = tone_lut(DisplaySettings(contrast=2.0))
    assert lut[64] == 0 and 128 <= lut[128] <= 129 and lut[200] == 255
    lut = tone_lut(DisplaySettings(gamma=2.0))
    assert lut[64] == 128  # sqrt(0.25) = 0.5: mid-tones brighter
    assert lut[0] == 0 and lut[255] == 255


def test_stain_amounts_are_recovered():
    amounts = np.array([[[0.8, 0.0, 0.0], [0.0, 0.5, 0.0], [0.0, 0.0, 0.7], [0.3, 0.2, 0.4]]])
    found = stain_amounts(_stained(amounts))
    assert np.allclose(found, amounts, atol=0.02)


def test_a_single_stain_channel_keeps_that_stain_only():
    h_only = _stained(np.array([[[0.8, 0.0, 0.0]]]))
    dab_only = _stained(np.array([[[0.0, 0.0, 0.8]]]))
    mixed = np.concatenate([h_only, dab_only], axis=1)
    dab = adjust_rgb(mixed, DisplaySettings(channel="dab"))
    assert np.all(dab[0, 0] >= 250)  # the haematoxylin pixel is white in the DAB channel
    assert np.array_equal(dab[0, 1], dab_only[0, 0]) or \
        np.abs(dab[0, 1].astype(int) - dab_only[0, 0]).max() <= 2
    hem = adjust_rgb(mixed, DisplaySettings(channel="hematoxylin"))
    assert np.abs(hem[0, 0].astype(int) - h_only[0, 0]).max() <= 2
    assert np.all(hem[0, 1] >= 250)


def test_bgrx_in_place_matches_rgb():
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    bgrx = np.concatenate([rgb[..., ::-1], np.full((5, 7, 1), 255, np.uint8)], axis=2)
    s = DisplaySettings(brightness=0.1, contrast=1.5, gamma=0.8, channel="eosin")
    adjust_bgrx_inplace(bgrx, s)
    assert np.array_equal(bgrx[..., 2::-1], adjust_rgb(rgb, s))
    assert np.all(bgrx[..., 3] == 255)


def test_bad_settings_are_refused_with_the_cause():
    with pytest.raises(ValueError, match="channel"):
        DisplaySettings(channel="pap")
    with pytest.raises(ValueError, match="gamma"):
        DisplaySettings(gamma=0.0)


def test_magnification_presets_need_the_pixel_size():
    assert magnification_zoom(40, 0.25) == pytest.approx(1.0)
    assert magnification_zoom(20, 0.25) == pytest.approx(0.5)
    assert magnification_zoom(10, 0.5) == pytest.approx(0.5)
    assert magnification_zoom(20, None) is None
