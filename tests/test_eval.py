"""`edge eval`: a deployed model on a user's own labelled folder, through the torch-free runtime."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import HAS_DATA, run_edge
from edge import runtime
from edge.data import data_root, read_image, to_tensor
from edge.errors import EdgeError
from edge.evaluate import match_classes, parse_class_map

pytestmark = pytest.mark.skipif(not HAS_DATA, reason="shared data sets not found (EDGE_DATA)")
ZOO = Path(__file__).resolve().parents[1] / "models" / "zoo"


def _fer_folder(root: Path) -> dict[str, list[Path]]:
    """Eight FER test faces of three classes under other folder names ('Happy', 'joy' for sad, 'angry'), a file
    that is no picture, and an empty folder."""
    picked = {}
    for folder, cls in (("Happy", "happy"), ("joy", "sad"), ("angry", "angry")):
        (root / folder).mkdir(parents=True)
        picked[cls] = sorted((data_root() / "fer2013" / "test" / cls).glob("*.png"))[:8]
        for f in picked[cls]:
            shutil.copy(f, root / folder / f.name)
    (root / "angry" / "notes.png").write_text("not a picture")
    (root / "unsorted").mkdir()
    return picked


def _cli_without(args: list[str], heavy: tuple[str, ...] = ("torch", "torchvision", "sklearn")) -> None:
    """Run ``edge <args>`` in a fresh interpreter: it must succeed without importing any of ``heavy``."""
    code = ("import sys, json\nfrom edge.cli import main\n"
            f"rc = main({args!r})\n"
            f"print(json.dumps([rc, sorted(m for m in {heavy!r} if m in sys.modules)]))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    rc, imported = json.loads(proc.stdout.strip().splitlines()[-1])
    assert rc == 0 and imported == [], (rc, imported, proc.stderr[-2000:])


def test_eval_scores_a_folder_as_the_runtime_does_without_torch(tmp_path):
    picked = _fer_folder(tmp_path / "mine")
    out = tmp_path / "report" / "fer-mine"
    args = ["eval", "fer", "--data", str(tmp_path / "mine"), "--map", "JOY=sad", "--as-is", "--json",
            "--out", str(out)]
    _cli_without(args)
    report = json.loads(out.with_suffix(".json").read_text())
    assert report["pictures"] == 24 and report["unreadable"] == 1 and report["unreadable_files"] == ["angry/notes.png"]
    assert report["empty_folders"] == ["unsorted"] and report["no_face_found"] is None
    assert report["folders"] == {"Happy": "happy", "angry": "angry", "joy": "sad"}
    assert report["matched_by"] == {"Happy": "name", "angry": "name", "joy": "--map"}
    # the same pictures through the runtime by hand
    model = runtime.load(ZOO / "fer" / "fer.int8.onnx")
    classes = model.classes
    imgs = [read_image(f, "rgb") for c in ("happy", "angry", "sad") for f in picked[c]]
    y = np.array([classes.index(c) for c in ("happy", "angry", "sad") for _ in picked[c]])
    pred = model.predict(to_tensor(imgs, model.manifest.input)).argmax(1)
    assert report["accuracy"] == round(float((pred == y).mean()), 4)
    cm = np.array(report["confusion"])
    assert cm.sum() == 24 and [cm[classes.index(c)].sum() for c in ("happy", "angry", "sad")] == [8, 8, 8]
    assert report["classes_present"] == ["angry", "happy", "sad"]
    mistakes = report["mistakes"]  # every wrong picture (fewer than 50 here), the most confident first
    assert len(mistakes) == int((pred != y).sum()) and all(m["truth"] != m["predicted"] for m in mistakes)
    assert [m["confidence"] for m in mistakes] == sorted((m["confidence"] for m in mistakes), reverse=True)
    assert {m["file"].split("/")[0] for m in mistakes} <= {"Happy", "angry", "joy"}
    f1 = [report["per_class"][c]["f1"] for c in report["classes_present"]]
    assert report["macro_f1"] == round(float(np.mean(f1)), 4)  # over the classes the folder has, not all seven
    md = out.with_suffix(".md").read_text()
    assert f"Accuracy **{report['accuracy']:.4f}**" in md and "| sad | 8 |" in md and "unsorted" in md
    assert report["png"] == str(out.with_suffix(".png")) and out.with_suffix(".png").stat().st_size > 5000
    assert "![confusion matrix](fer-mine.png)" in md


def test_eval_finds_faces_like_an_upload_and_judges_people_in_pairs(tmp_path):
    """Without --as-is FER pictures go through the face prestep (found faces are cropped, the rest counted and
    taken whole); the face embedder is judged on every pair of pictures of the people's folders."""
    _fer_folder(tmp_path / "mine")
    proc = run_edge("eval", "fer", "--data", str(tmp_path / "mine"), "--map", "joy=sad", "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    assert report["pictures"] == 24 and 0 <= report["no_face_found"] < 24 and "face found" in report["framing"]
    people = tmp_path / "people"
    orl = data_root() / "faces" / "orl"
    for name in ("s10", "s11", "s12"):
        shutil.copytree(orl / name, people / name)
    proc = run_edge("eval", "face", "--data", str(people), "--out", str(tmp_path / "face"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "3 people, 435 pairs (135 of the same person)" in proc.stdout and "EER" in proc.stdout
    report = json.loads((tmp_path / "face.json").read_text())
    points = {p["point"]: p for p in report["operating_points"]}
    assert points["the model's"] == {"point": "the model's", "threshold": report["threshold"], "far": report["far"],
                                     "frr": report["frr"]}
    assert points["false accepts <= 1.0%"]["far"] <= 0.01  # 300 strangers' pairs: 1 % can be told
    assert points["false accepts <= 0.1%"]["threshold"] is None and "too few strangers' pairs" in proc.stdout
    assert "edge attend run --threshold" in proc.stdout and (tmp_path / "face.png").stat().st_size > 5000


def test_operating_points_are_what_their_thresholds_do():
    """Each suggested threshold, passed on as rounded, gives the rates its row shows; the false-accept points are the
    loosest thresholds within their limit, the EER point is where the two rates cross, best F1 is the best."""
    from edge.metrics import operating_points, rates_at

    rng = np.random.default_rng(0)
    same = rng.random(3000) < 0.1
    dist = np.where(same, rng.normal(0.7, 0.2, 3000), rng.normal(1.2, 0.2, 3000)).round(3)  # ties, as real data has
    points = {p["point"]: p for p in operating_points(dist, same)}
    grid = np.unique(dist)
    rates = np.array([rates_at(dist, same, t) for t in grid])
    for p in points.values():
        assert (p["far"], p["frr"]) == tuple(round(r, 4) for r in rates_at(dist, same, p["threshold"]))
    for f in (0.01, 0.001):
        p = points[f"false accepts <= {f:.1%}"]
        assert p["far"] <= f and rates[grid > p["threshold"]][0][0] > f  # the next distance up lets too many in
    eer = points["equal error rate"]
    assert abs(eer["far"] - eer["frr"]) <= np.abs(rates[:, 0] - rates[:, 1]).min() + 1e-3
    tp = (1 - rates[:, 1]) * same.sum()
    f1 = 2 * tp / (tp + rates[:, 0] * (~same).sum() + same.sum())
    best = points["best F1"]
    tp_b = (1 - best["frr"]) * same.sum()
    assert 2 * tp_b / (tp_b + best["far"] * (~same).sum() + same.sum()) >= f1.max() - 1e-3


def test_eval_refuses_what_it_cannot_score(tmp_path):
    _fer_folder(tmp_path / "mine")
    (tmp_path / "mine" / "joy").rename(tmp_path / "mine" / "contempt")  # CK+'s, no FER class
    proc = run_edge("eval", "fer", "--data", str(tmp_path / "mine"))
    assert proc.returncode == 2 and "class folders contempt name none of the model's classes" in proc.stderr
    assert "--map contempt=angry" in proc.stderr and "--skip-unknown" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_edge("eval", "fer", "--data", str(tmp_path / "mine"), "--skip-unknown", "--as-is", "--json")
    report = json.loads(proc.stdout)
    assert report["left_out"] == {"contempt": 8} and report["pictures"] == 16 and "contempt" not in report["folders"]
    assert "contempt" not in report["matched_by"]
    proc = run_edge("eval", "fer", "--data", str(tmp_path / "nowhere"))
    assert proc.returncode == 2 and "data not found" in proc.stderr
    shutil.copytree(data_root() / "faces" / "orl" / "s10", tmp_path / "one" / "s10")
    proc = run_edge("eval", "face", "--data", str(tmp_path / "one"))
    assert proc.returncode == 2 and "two or more person folders" in proc.stderr
    for f in ("a", "b"):  # two people, one picture each: no genuine pair
        (tmp_path / "single" / f).mkdir(parents=True)
        shutil.copy(data_root() / "faces" / "orl" / "s10" / "1.pgm", tmp_path / "single" / f / "1.pgm")
    proc = run_edge("eval", "face", "--data", str(tmp_path / "single"))
    assert proc.returncode == 2 and "no genuine pair" in proc.stderr
    (tmp_path / "broken" / "happy").mkdir(parents=True)
    (tmp_path / "broken" / "happy" / "x.jpg").write_bytes(b"\xff\xd8 truncated")
    proc = run_edge("eval", "fer", "--data", str(tmp_path / "broken"))
    assert proc.returncode == 2 and "none of the 1 pictures" in proc.stderr
    (tmp_path / "split" / "test" / "happy").mkdir(parents=True)  # a training folder (train/val/test) as is
    shutil.copy(data_root() / "fer2013" / "test" / "happy" / "00000.png", tmp_path / "split" / "test" / "happy")
    proc = run_edge("eval", "fer", "--data", str(tmp_path / "split"))
    assert proc.returncode == 2 and f"e.g. --data {tmp_path / 'split' / 'test'}" in proc.stderr
    with pytest.raises(EdgeError, match="folder=class"):
        parse_class_map("joy")
    assert match_classes(["Joy", "SAD"], ["happy", "sad"], parse_class_map("joy=Happy")) == [(0, "--map"), (1, "name")]


def test_eval_scores_the_trail_tree_on_a_station_csv_without_sklearn(tmp_path):
    """Another station's BMKG file: its rows validated as in training (impossible ones dropped and counted), the
    deployed tree scored against the label it was trained on (with the card's figure) or the other one (without)."""
    from edge.weather import load_weather

    src = data_root() / "weather" / "bmkg_semarang_2017_2023.csv"
    lines = src.read_text().splitlines()
    head = lines[0].split(",")
    bad = lines[1].split(",")
    bad[head.index("rh_avg")] = "150"  # out of range
    nan = lines[2].split(",")
    nan[head.index("tavg")] = ""  # missing
    csv = tmp_path / "station.csv"
    csv.write_text("\n".join([lines[0], ",".join(bad), ",".join(nan), *lines[3:400]]) + "\n")
    out = tmp_path / "trail-report"
    args = ["eval", "trail", "--data", str(csv), "--json", "--out", str(out)]
    _cli_without(args)
    report = json.loads(out.with_suffix(".json").read_text())
    table = load_weather(csv)
    assert report["rows"] == 399 and report["valid_rows"] == len(table.X) <= 397
    assert report["dropped"].get("rh_avg out of range", 0) >= 1 and report["dropped"].get("tavg missing", 0) >= 1
    pred = runtime.load(ZOO / "trail" / "trail.py").predict(table.X.astype(np.float32)).argmax(1)
    assert report["label"] == report["trained_on"] == "rule"
    assert report["accuracy"] == round(float((pred == table.y_rule).mean()), 4) and list(report["card"].values())
    assert "| Berbahaya |" in out.with_suffix(".md").read_text()
    from edge.evaluate import _class_scores  # macro F1 over the classes present, as for pictures

    one = _class_scores(table.y_rule[table.y_rule == 1], pred[table.y_rule == 1], ["Aman", "Berbahaya"])
    assert one["classes_present"] == ["Berbahaya"] and one["macro_f1"] == one["per_class"]["Berbahaya"]["f1"]
    proc = run_edge("eval", "trail", "--data", str(csv), "--label", "outcome", "--json")
    other = json.loads(proc.stdout)
    assert other["accuracy"] == round(float((pred == table.y_outcome).mean()), 4) and other["card"] == {}
    proc = run_edge("eval", "trail", "--data", str(tmp_path))
    assert proc.returncode == 2 and "BMKG daily table (.csv or .xlsx" in proc.stderr
    proc = run_edge("eval", "fer", "--data", str(tmp_path), "--label", "rule")
    assert proc.returncode == 2 and "--label is for the trail tree" in proc.stderr


def test_other_data_sets_names_and_a_flat_folder_of_named_pictures(tmp_path):
    """Folders named as CK+ / JAFFE / tomato-stage data sets name them, and a flat folder labelled by file names (the
    Kaggle ASL test layout, 'A_test.jpg', with its 'nothing' and 'space' pictures left out by --skip-unknown)."""
    from edge.class_names import label_from_file_name, match_class

    fer = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    assert [match_class(n, fer)[0] for n in ("Happiness", "ANGER", "sadness", "SU", "AF", "Neutral ")] == \
        [3, 0, 4, 5, 2, 6]
    assert match_class("happiness", fer)[1] == "alias" and match_class("Happy", fer)[1] == "name"
    assert match_class("contempt", fer) == (None, "") and match_class("joy", fer, {"joy": "sad"}) == (4, "--map")
    tomato = ["green", "half_ripened", "fully_ripened"]
    assert [match_class(n, tomato)[0] for n in ("Half-Ripened", "unripe", "Turning", "ripe", "b_fully_ripened")] == \
        [1, 0, 1, 2, 2]
    assert match_class("ripe", fer) == (None, "")  # an alias counts only for a model that has its class
    assert [label_from_file_name(n) for n in ("A_test", "happy_001", "George_W_Bush_0001", "IMG_1234", "12")] == \
        ["A", "happy", "George W Bush", None, None]

    flat = tmp_path / "asl_alphabet_test"
    flat.mkdir()
    letters = ["A", "B", "L", "Y"]
    for c in letters:
        shutil.copy(sorted((data_root() / "asl" / "kaggle_alphabet" / c).glob("*.jpg"))[0], flat / f"{c}_test.jpg")
    shutil.copy(flat / "A_test.jpg", flat / "nothing_test.jpg")
    proc = run_edge("eval", "asl", "--data", str(flat))
    assert proc.returncode == 2 and "class folders nothing name none" in proc.stderr
    out = tmp_path / "asl-report"
    _cli_without(["eval", "asl", "--data", str(flat), "--skip-unknown", "--json", "--out", str(out)])
    report = json.loads(out.with_suffix(".json").read_text())
    assert report["layout"].startswith("flat folder") and report["left_out"] == {"nothing": 1}
    assert report["folders"] == {c: c for c in letters} and report["pictures"] == 4
    model = runtime.load(ZOO / "asl" / "asl.int8.onnx")
    x = to_tensor([read_image(flat / f"{c}_test.jpg", "rgb") for c in letters], model.manifest.input)
    pred = model.predict(x).argmax(1)
    assert report["accuracy"] == round(float((pred == [model.classes.index(c) for c in letters]).mean()), 4)
    md = out.with_suffix(".md").read_text()
    assert "Left out (no class of the model's, --skip-unknown): nothing (1 pictures)" in md
    (flat / "IMG_0001.jpg").write_bytes((flat / "A_test.jpg").read_bytes())
    proc = run_edge("eval", "asl", "--data", str(flat))
    assert proc.returncode == 2 and "name no label (e.g. IMG_0001.jpg)" in proc.stderr
