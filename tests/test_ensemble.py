"""Ensembles: several runs as one model that averages logits, exported and scored like a single run."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import run_edge
from edge import runtime
from edge.data import data_root
from edge.errors import EdgeError
from edge.models.checkpoint import load_model, read_checkpoint

pytestmark = pytest.mark.skipif(not (data_root() / "fer2013").exists(), reason="fer2013 not present")


@pytest.fixture(scope="module")
def fer_runs(tmp_path_factory):
    """Two tiny FER runs that differ only in their seed (and a third at another input size)."""
    from edge.models.train_image import default_config, train_classifier

    root = tmp_path_factory.mktemp("runs")
    for name, seed, size in (("a", 0, 24), ("b", 1, 24), ("c", 0, 32)):
        cfg = default_config("fer", imgsz=size, epochs=1, batch=32, max_per_class=12, seed=seed)
        cfg.builder_kwargs = {"pretrained": False}
        train_classifier(cfg, root / name, log=lambda *_: None)
    return root


def test_ensemble_averages_member_logits_over_both_views_exports_and_publishes(fer_runs, tmp_path, monkeypatch):
    from edge.models.ensemble import ensemble_runs

    m = ensemble_runs([fer_runs / "a", fer_runs / "b"], tmp_path / "ens", flip=True, log=lambda *_: None)
    assert [r["seed"] for r in m["members"]] == [0, 1] and m["test"]["n"] == 3589
    assert "without_mirror" in m["test"] and m["config"]["ensemble"] == 2
    ens = load_model(tmp_path / "ens" / "best.pt")
    a, b = load_model(fer_runs / "a" / "best.pt"), load_model(fer_runs / "b" / "best.pt")
    x = torch.rand(4, 1, 24, 24)
    xf = torch.flip(x, dims=[3])
    with torch.inference_mode():
        want = (a(x) + a(xf) + b(x) + b(xf)) / 4
        assert torch.allclose(ens(x), want, atol=1e-5)
        assert torch.allclose(ens(xf), ens(x), atol=1e-5)  # the mirror view makes it mirror-invariant
        assert not torch.allclose(a(x), b(x), atol=1e-3)  # the members really differ
    meta = read_checkpoint(tmp_path / "ens" / "best.pt")["meta"]
    assert meta["metrics"]["test_accuracy"] == m["test"]["accuracy"] and meta["classes"][3] == "happy"
    proc = run_edge("export", str(tmp_path / "ens" / "best.pt"), "--formats", "onnx,onnx-int8",
                    "--out", str(tmp_path / "art"), "--calib", "16", "--verify-n", "16", "--json")
    assert proc.returncode == 0, proc.stderr
    from edge.bench.accuracy import evaluate

    onnx = runtime.load(tmp_path / "art" / "fer" / "fer.onnx")
    assert onnx.manifest.metrics["test_accuracy"] == m["test"]["accuracy"]
    assert evaluate(onnx)["value"] == pytest.approx(m["test"]["accuracy"], abs=0.01)
    out = onnx.predict(np.random.default_rng(0).random((2, 1, 24, 24), np.float32))
    assert out.shape == (2, 7) and np.isfinite(out).all()
    from edge.models import cards

    monkeypatch.setattr(cards, "CARDS", tmp_path / "cards")
    monkeypatch.setattr(cards, "ZOO", tmp_path / "zoo")
    text = cards.write_card("fer", tmp_path / "ens", tmp_path / "art", "edge ensemble ...", ["onnx-int8"]).read_text()
    assert "the mean of the logits of 2 networks" in text and "over the image and its mirror image" in text
    assert "### Members" in text and "seeds 0, 1" in text and f"| {m['test']['accuracy']} |" in text
    assert sorted(p.name for p in (tmp_path / "zoo" / "fer").iterdir()) == ["fer.int8.onnx", "fer.int8.onnx.json"]


def test_members_of_other_input_sizes_get_the_input_resized(fer_runs, tmp_path):
    import torch.nn.functional as F

    from edge.models.ensemble import ensemble_runs

    m = ensemble_runs([fer_runs / "a", fer_runs / "c"], tmp_path / "ens", log=lambda *_: None)
    assert [r["imgsz"] for r in m["members"]] == [24, 32] and m["config"]["imgsz"] == 32
    ens = load_model(tmp_path / "ens" / "best.pt")
    assert read_checkpoint(tmp_path / "ens" / "best.pt")["meta"]["input"]["shape"] == [None, 1, 32, 32]
    a, c = load_model(fer_runs / "a" / "best.pt"), load_model(fer_runs / "c" / "best.pt")
    x = torch.rand(3, 1, 32, 32)
    with torch.inference_mode():
        want = (a(F.interpolate(x, size=(24, 24), mode="bilinear", align_corners=False)) + c(x)) / 2
        assert torch.allclose(ens(x), want, atol=1e-5)


def test_ensemble_refuses_runs_that_do_not_fit(fer_runs, tmp_path):
    from edge.models.ensemble import ensemble_runs
    from edge.models.train_tree import train_trail

    quiet = {"log": lambda *_: None}
    train_trail(out=tmp_path / "tree")
    with pytest.raises(EdgeError, match="only neural-network"):
        ensemble_runs([fer_runs / "a", tmp_path / "tree"], tmp_path / "x", **quiet)
    with pytest.raises(EdgeError, match="two or more"):
        ensemble_runs([fer_runs / "a"], tmp_path / "x", **quiet)
    with pytest.raises(EdgeError, match="not found"):
        ensemble_runs([fer_runs / "a", tmp_path / "missing"], tmp_path / "x", **quiet)
    assert not (tmp_path / "x").exists()
    proc = run_edge("ensemble", str(fer_runs / "a"), str(tmp_path / "missing"), "--out", str(tmp_path / "x"))
    assert proc.returncode != 0 and "not found" in proc.stderr and "Traceback" not in proc.stderr
