"""Simulated capture conditions (edge.conditions): same shape and dtype, seeded, and each changes what it says."""

from __future__ import annotations

import numpy as np
import pytest

from edge.conditions import FACE_CONDITIONS, far_away, hard_light, jpeg_20, out_of_focus


def face(shape: tuple[int, ...]) -> np.ndarray:
    """A textured picture: fine checks over a smooth ramp."""
    rng = np.random.default_rng(0)
    base = np.linspace(60, 200, shape[1])[None, :] + 25 * ((np.indices(shape[:2]).sum(0) % 2) - 0.5)
    base = base + rng.normal(0, 3, shape[:2])
    out = np.clip(base, 0, 255).astype(np.uint8)
    return np.repeat(out[..., None], shape[2], axis=2) if len(shape) == 3 else out


@pytest.mark.parametrize("shape", [(112, 112), (96, 128, 3)])
def test_every_condition_keeps_shape_and_dtype_changes_pixels_and_is_seeded(shape):
    x = face(shape)
    for name, cond in FACE_CONDITIONS.items():
        y = cond(x, 5)
        assert y.shape == x.shape and y.dtype == np.uint8, name
        assert np.abs(y.astype(int) - x).mean() > 1.0, name
        assert np.array_equal(y, cond(x, 5)), name


def test_conditions_do_what_they_say():
    x = face((112, 112))
    detail = lambda im: float(np.abs(np.diff(im.astype(float), axis=1)).mean())  # noqa: E731
    assert detail(out_of_focus(x, 0)) < 0.5 * detail(x) and detail(far_away(x, 0)) < 0.5 * detail(x)
    lit = hard_light(x, 1).astype(float) / np.maximum(x, 1)
    assert lit[:, :40].mean() < 0.5 < 1.0 < lit[:, -40:].mean()  # one side in shadow, the other brighter
    assert hard_light(x, 2)[:, :40].mean() > hard_light(x, 1)[:, :40].mean()  # the side alternates with k
    q = jpeg_20(x, 0)
    assert 1.0 < np.abs(q.astype(int) - x).mean() < 20.0  # lossy, still the same picture
