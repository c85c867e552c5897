"""Ensembles: several runs as one model that averages logits, exported and scored like a single run."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import run_edge
from edge import runtime
from edge.data import data_root
from edge.errors import EdgeError
from edge.models.checkpoint import load_model, read_checkpoint

# every test here on FER2013 cut to 30 val and 30 test faces per class (conftest.small_fer): scored on 210 faces
pytestmark = [pytest.mark.skipif(not (data_root() / "fer2013").exists(), reason="fer2013 not present"),
              pytest.mark.usefixtures("small_fer")]


@pytest.fixture(scope="module")
def fer_runs(small_fer, tmp_path_factory):
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
    assert [r["seed"] for r in m["members"]] == [0, 1] and m["test"]["n"] == 210
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
    assert "### Members" in text and "seeds 0, 1" in text and f"| {m['test']['accuracy']:.4f} |" in text
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


def test_one_run_with_flip_is_that_network_over_both_views(fer_runs, tmp_path):
    from edge.models.ensemble import ensemble_runs

    m = ensemble_runs([fer_runs / "a"], tmp_path / "one", flip=True, log=lambda *_: None)
    assert m["config"]["ensemble"] == 1 and "without_mirror" in m["test"]
    one, a = load_model(tmp_path / "one" / "best.pt"), load_model(fer_runs / "a" / "best.pt")
    x = torch.rand(3, 1, 24, 24)
    with torch.inference_mode():
        assert torch.allclose(one(x), (a(x) + a(torch.flip(x, dims=[3]))) / 2, atol=1e-5)
    # without the mirror view it is the run itself, scored the same
    own = json.loads((fer_runs / "a" / "metrics.json").read_text())["test"]["accuracy"]
    assert m["test"]["without_mirror"]["accuracy"] == pytest.approx(own, abs=1e-3)


def test_ensemble_refuses_runs_that_do_not_fit(fer_runs, tmp_path):
    from edge.models.ensemble import ensemble_runs
    from edge.models.train_tree import train_trail

    quiet = {"log": lambda *_: None}
    train_trail(out=tmp_path / "tree")
    with pytest.raises(EdgeError, match="only neural-network"):
        ensemble_runs([fer_runs / "a", tmp_path / "tree"], tmp_path / "x", **quiet)
    with pytest.raises(EdgeError, match=r"two or more runs \(or one with --flip\)"):
        ensemble_runs([fer_runs / "a"], tmp_path / "x", **quiet)
    with pytest.raises(EdgeError, match="not found"):
        ensemble_runs([fer_runs / "a", tmp_path / "missing"], tmp_path / "x", **quiet)
    from edge.models.train_image import default_config, train_classifier

    cfg = default_config("fer", imgsz=24, epochs=1, batch=32, max_per_class=12, seed=3)
    cfg.builder_kwargs, cfg.augment = {"pretrained": False}, dataclasses.replace(cfg.augment, flip=False)
    train_classifier(cfg, tmp_path / "unmirrored", **quiet)
    with pytest.raises(EdgeError, match="unmirrored trained without mirrored images"):
        ensemble_runs([fer_runs / "a", tmp_path / "unmirrored"], tmp_path / "x", flip=True, **quiet)
    ensemble_runs([fer_runs / "a", tmp_path / "unmirrored"], tmp_path / "y", **quiet)  # without the mirror: fine
    assert not (tmp_path / "x").exists()
    proc = run_edge("ensemble", str(fer_runs / "a"), str(tmp_path / "missing"), "--out", str(tmp_path / "x"))
    assert proc.returncode != 0 and "not found" in proc.stderr and "Traceback" not in proc.stderr


def test_distillation_loss_is_zero_at_the_teacher_and_pulls_towards_it():
    from edge.models.train_image import distillation_loss

    teacher = torch.tensor([[2.0, 0.0, -1.0], [0.0, 3.0, 0.0]])
    t = 2.0
    assert float(distillation_loss(teacher.clone(), teacher / t, t)) == pytest.approx(0.0, abs=1e-6)
    student = torch.zeros(2, 3, requires_grad=True)
    loss = distillation_loss(student, teacher / t, t)
    assert float(loss.detach()) > 0.1
    loss.backward()
    assert (student.grad.argmin(1) == teacher.argmax(1)).all()  # descent raises the teacher's top class


def test_a_run_distils_an_ensemble_and_keeps_its_logits(fer_runs, tmp_path):
    from edge.families import get_family
    from edge.models.ensemble import ensemble_runs
    from edge.models.train_common import cache_images
    from edge.models.train_image import _predict, cap_per_class, default_config, load_split, train_classifier
    from edge.models.train_tree import train_trail

    quiet = {"log": lambda *_: None}
    ensemble_runs([fer_runs / "a", fer_runs / "b"], tmp_path / "ens", flip=True, **quiet)
    cfg = default_config("fer", imgsz=24, epochs=1, batch=32, max_per_class=12, seed=0)
    cfg.builder_kwargs = {"pretrained": False}
    plain = train_classifier(cfg, tmp_path / "plain", **quiet)
    cfg.teacher, cfg.distill = str(tmp_path / "ens"), 1.0
    m = train_classifier(cfg, tmp_path / "kd", **quiet)
    assert m["config"]["teacher"] == str(tmp_path / "ens") and m["config"]["distill"] == 1.0
    assert m["history"][0]["loss"] != plain["history"][0]["loss"]  # the same seed and batches: another target
    kept = torch.load(tmp_path / "kd" / "teacher_logits.pt")
    assert kept["logits"].shape == (84, 7) and torch.isfinite(kept["logits"]).all()
    parts = load_split("fer", None, lambda *_: None).parts
    x, _, _ = cache_images(cap_per_class(parts["train"], 7, 12, 0), "gray", 24, Path("runs") / "cache", "fer-train",
                           lambda *_: None)
    want = _predict(load_model(tmp_path / "ens" / "best.pt"), x, get_family("fer").input_spec(24))
    assert np.allclose(kept["logits"].numpy(), want, atol=1e-4)  # the teacher's, on the training images, in order
    mtime = (tmp_path / "kd" / "teacher_logits.pt").stat().st_mtime
    train_classifier(cfg, tmp_path / "kd", **quiet)  # a second run reuses them
    assert (tmp_path / "kd" / "teacher_logits.pt").stat().st_mtime == mtime
    train_trail(out=tmp_path / "tree")
    for tree in (tmp_path / "tree" / "best.pkl", tmp_path / "tree"):  # the checkpoint or its run folder
        cfg.teacher = str(tree)
        with pytest.raises(EdgeError, match="teacher .*trail"):
            train_classifier(cfg, tmp_path / "bad", **quiet)
    cfg.teacher, cfg.distill = str(tmp_path / "ens"), 1.5
    with pytest.raises(EdgeError, match=r"distill weight must be in \(0, 1\]"):
        train_classifier(cfg, tmp_path / "bad", **quiet)
    proc = run_edge("train", "fer", "--distill", "0.5", "--out", str(tmp_path / "x"))
    assert proc.returncode != 0 and "--teacher" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_edge("train", "face", "--teacher", str(tmp_path / "ens"), "--out", str(tmp_path / "x"))
    assert proc.returncode != 0 and "only 'dlib'" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.skipif(not (data_root() / "tomato").exists(), reason="tomato not present")
def test_an_ensemble_is_scored_beyond_the_data_set_like_its_members(tmp_path):
    """Tomato runs are scored under other cameras' colour and exposure: their ensemble is too, on the same test."""
    from edge.families import get_family
    from edge.models import train_image as ti
    from edge.models.ensemble import ensemble_runs
    from edge.models.train_common import cache_images

    for name, seed in (("a", 0), ("b", 1)):
        cfg = ti.default_config("tomato-mobilenet", imgsz=24, epochs=1, batch=16, max_per_class=8, seed=seed)
        cfg.builder_kwargs = {**cfg.builder_kwargs, "pretrained": False}
        run = ti.train_classifier(cfg, tmp_path / name, log=lambda *_: None)
        assert set(run["test"]["camera_shifts"]) == set(ti.CAMERA_SHIFTS)
    m = ensemble_runs([tmp_path / "a", tmp_path / "b"], tmp_path / "ens", flip=True, log=lambda *_: None)
    spec = get_family("tomato").input_spec(24)
    parts = ti.load_split("tomato", None, lambda *_: None).parts
    x, y, _ = cache_images(parts["test"], "rgb", 24, Path("runs") / "cache", "tomato-test", lambda *_: None)
    want = ti.camera_shift_accuracy(load_model(tmp_path / "ens" / "best.pt"), x, y, spec)
    assert m["test"]["camera_shifts"] == want and "unseen_backgrounds" not in m["test"]
    saved = json.loads((tmp_path / "ens" / "metrics.json").read_text())
    assert saved["test"]["camera_shifts"] == want


def test_a_deployed_artifact_teaches_through_the_runtime(fer_runs, tmp_path):
    """The zoo's int8 model distils without the runs behind it: its logits, as the runtime gives them, are kept."""
    from edge.data import load_batch
    from edge.families import get_family
    from edge.models.train_common import cache_images
    from edge.models.train_image import _predict, cap_per_class, default_config, load_split, train_classifier

    zoo = Path("models/zoo")
    quiet = {"log": lambda *_: None}
    cfg = default_config("fer", imgsz=24, epochs=1, batch=32, max_per_class=6, seed=0)
    cfg.builder_kwargs, cfg.teacher = {"pretrained": False}, str(zoo / "fer" / "fer.int8.onnx")
    m = train_classifier(cfg, tmp_path / "kd", **quiet)
    assert np.isfinite(m["history"][0]["loss"])
    kept = torch.load(tmp_path / "kd" / "teacher_logits.pt")["logits"].numpy()
    parts = load_split("fer", None, lambda *_: None).parts
    teacher = runtime.load(zoo / "fer" / "fer.int8.onnx")
    x, y, _ = load_batch(cap_per_class(parts["train"], 7, 6, 0), teacher.manifest.input)
    assert kept.shape == (42, 7) and np.allclose(kept, teacher.predict(x), atol=1e-5)  # in the training order
    assert (kept.argmax(1) == y).mean() > 0.5  # a trained teacher, not noise
    # several teachers, comma-separated: an artifact beside a run teach as one, their logits averaged
    cfg.teacher = f"{zoo / 'fer' / 'fer.int8.onnx'}, {fer_runs / 'a'}"
    train_classifier(cfg, tmp_path / "kd", **quiet)  # the same folder: the one teacher's kept logits are not reused
    both = torch.load(tmp_path / "kd" / "teacher_logits.pt")["logits"].numpy()
    xa, _, _ = cache_images(cap_per_class(parts["train"], 7, 6, 0), "gray", 24, Path("runs") / "cache", "fer-train",
                            lambda *_: None)
    run_a = _predict(load_model(fer_runs / "a" / "best.pt"), xa, get_family("fer").input_spec(24))
    assert np.allclose(both, (kept + run_a) / 2, atol=1e-4)
    for bad in (str(zoo / "tomato" / "tomato.int8.onnx.json"),  # the manifest names the artifact too
                f"{fer_runs / 'a'},{zoo / 'tomato' / 'tomato.int8.onnx'}"):  # one wrong teacher among several
        cfg.teacher = bad
        with pytest.raises(EdgeError, match="teacher .*a tomato model"):
            train_classifier(cfg, tmp_path / "bad", **quiet)


@pytest.mark.skipif(not (data_root() / "faces" / "orl").exists(), reason="faces not present")
def test_face_runs_average_unit_embeddings_choose_a_threshold_export_and_publish(tmp_path, monkeypatch):
    import torch.nn.functional as F

    from edge.models import cards
    from edge.models.ensemble import ensemble_runs
    from edge.models.train_face import FaceConfig, train_face

    quiet = {"log": lambda *_: None}
    for name, seed, clahe in (("a", 0, 2.0), ("b", 1, 2.0), ("plain", 0, 0.0)):
        train_face(FaceConfig(imgsz=32, epochs=1, steps_per_epoch=2, seed=seed, clahe=clahe), tmp_path / name, **quiet)
    m = ensemble_runs([tmp_path / "a", tmp_path / "b"], tmp_path / "ens", flip=True, **quiet)
    t = m["test"]
    assert m["family"] == "face" and t["pairs"] == 100 * 99 // 2 and [r["seed"] for r in m["members"]] == [0, 1]
    assert t["threshold"] == m["val"]["threshold"] and "without_mirror" in t and 0 <= t["eer"] <= 1
    meta = read_checkpoint(tmp_path / "ens" / "best.pt")["meta"]
    assert meta["threshold"]["distance"] == t["threshold"] and meta["input"]["clahe"] == 2.0
    ens, a, b = (load_model(tmp_path / k / "best.pt") for k in ("ens", "a", "b"))
    x = torch.rand(3, 1, 32, 32)
    xf = torch.flip(x, dims=[3])
    with torch.inference_mode():
        want = F.normalize(sum(F.normalize(net(v), dim=1) for net in (a, b) for v in (x, xf)), dim=1)
        assert torch.allclose(ens(x), want, atol=1e-5)
        assert torch.allclose(ens(xf), ens(x), atol=1e-5) and not torch.allclose(a(x), b(x), atol=1e-3)
    # the members' own scores come back without the mirror view of one member
    one = ensemble_runs([tmp_path / "a"], tmp_path / "one", flip=True, **quiet)
    own = json.loads((tmp_path / "a" / "metrics.json").read_text())["test"]
    assert one["test"]["without_mirror"]["eer"] == pytest.approx(own["eer"], abs=1e-3)
    proc = run_edge("export", str(tmp_path / "ens" / "best.pt"), "--formats", "onnx", "--out", str(tmp_path / "art"),
                    "--verify-n", "8", "--json")
    assert proc.returncode == 0, proc.stderr
    onnx = runtime.load(tmp_path / "art" / "face" / "face.onnx")
    assert onnx.manifest.threshold["distance"] == t["threshold"] and onnx.manifest.input.clahe == 2.0
    np.testing.assert_allclose(onnx.predict(x.numpy()), want.numpy(), atol=1e-4)
    monkeypatch.setattr(cards, "CARDS", tmp_path / "cards")
    monkeypatch.setattr(cards, "ZOO", tmp_path / "zoo")
    text = cards.write_card("face", tmp_path / "ens", tmp_path / "art", "edge ensemble ...", []).read_text()
    assert "the mean of the unit embeddings (normalised again) of 2 networks" in text and "### Members" in text
    assert f"| **this ensemble** |  |  |  | {t['eer']} |" in text
    # members must be equalised alike, and of the identity protocol
    with pytest.raises(EdgeError, match="clahe 0.0 vs 2.0"):
        ensemble_runs([tmp_path / "a", tmp_path / "plain"], tmp_path / "x", **quiet)
    small = FaceConfig(imgsz=32, epochs=1, steps_per_epoch=1, clahe=2.0,
                       builder="edge.models.siamese:siamese_squeezenet",
                       builder_kwargs={"embedding_size": 64, "in_channels": 1})
    train_face(small, tmp_path / "small", **quiet)
    with pytest.raises(EdgeError, match=r"embeddings of different sizes \(\[64, 128\]\)"):
        ensemble_runs([tmp_path / "a", tmp_path / "small"], tmp_path / "x", **quiet)
    train_face(FaceConfig(imgsz=32, epochs=1, steps_per_epoch=1, protocol="paper"), tmp_path / "paper", **quiet)
    with pytest.raises(EdgeError, match="identity protocol"):
        ensemble_runs([tmp_path / "paper"], tmp_path / "x", flip=True, **quiet)
    assert not (tmp_path / "x").exists()
