"""Softmax temperature fitted on the validation split, stored in the manifest, used by live and serve."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from conftest import run_edge
from edge.calibrate import ece, fit_temperature, nll, softmax_t
from edge.zoo import zoo_models


def _sampled(n: int = 4000, k: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """True logits z and labels drawn from softmax(z): z is perfectly calibrated."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 2.0, (n, k))
    p = softmax_t(z)
    y = np.array([rng.choice(k, p=row) for row in p])
    return z, y


def test_fit_temperature_undoes_a_known_over_and_under_confidence():
    z, y = _sampled()
    for scale in (3.0, 0.5):  # logits x3: over-confident, T should come out near 3; x0.5: near 0.5
        t = fit_temperature(z * scale, y)
        assert t == pytest.approx(scale, rel=0.1), (scale, t)
        assert nll(z * scale, y, t) <= nll(z * scale, y) + 1e-9
        assert ece(softmax_t(z * scale, t), y) < ece(softmax_t(z * scale), y)


def test_ece_of_calibrated_and_overconfident_predictions():
    z, y = _sampled(seed=1)
    assert ece(softmax_t(z), y) < 0.03
    assert ece(softmax_t(z * 4), y) > 0.1
    sure = np.eye(3)[[0, 1, 2, 0]]  # confidence 1, right 3 times of 4: ECE 0.25
    assert ece(sure, np.array([0, 1, 2, 1])) == pytest.approx(0.25)


@pytest.mark.skipif("tomato" not in zoo_models(), reason="no tomato model in the zoo")
def test_calibrate_writes_the_temperature_that_live_and_serve_then_use(tmp_path):
    from edge.data import data_root

    if not (data_root() / "tomato" / "laboro_big").exists():
        pytest.skip("tomato data not present")
    src = zoo_models()["tomato"]
    for f in (src, src.with_name(src.name + ".json")):
        shutil.copy(f, tmp_path / f.name)
    art = tmp_path / src.name
    man = json.loads((tmp_path / (src.name + ".json")).read_text())
    man.pop("temperature", None)
    (tmp_path / (src.name + ".json")).write_text(json.dumps(man))
    proc = run_edge("calibrate", str(art), "--json")
    assert proc.returncode == 0, proc.stderr
    rep = json.loads(proc.stdout)[0]
    assert rep["val_nll"]["after"] <= rep["val_nll"]["before"] and 0.05 <= rep["temperature"] <= 20
    written = json.loads((tmp_path / (src.name + ".json")).read_text())
    assert written["temperature"] == rep["temperature"] and written["sha256"] == man["sha256"]
    from edge import runtime
    from edge.data import to_tensor
    from edge.live import Classifier

    clf = Classifier.open(art)
    img = np.random.default_rng(0).integers(0, 255, (96, 96, 3), np.uint8)
    logits = runtime.load(art).predict(to_tensor([img], clf.model.manifest.input))
    assert np.allclose(clf.predict_crops([img]), softmax_t(logits, rep["temperature"]), atol=1e-6)


def test_calibrate_refuses_what_it_cannot_calibrate(tmp_path, fer_artifacts):
    r = run_edge("calibrate", str(fer_artifacts / "fer" / "fer.onnx"))  # random init
    assert r.returncode != 0 and "not a trained model" in r.stderr
    if "face" in zoo_models():
        r = run_edge("calibrate", "face")
        assert r.returncode != 0 and "only classifiers are calibrated" in r.stderr
    r = run_edge("calibrate", "dragon")
    assert r.returncode != 0 and "no model 'dragon'" in r.stderr
