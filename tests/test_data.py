"""Splits never leak a group across sides; user folders, corrupt images and preprocessing."""

from __future__ import annotations

import numpy as np
import pytest

from edge.data import (
    data_root,
    list_image_folder,
    load_batch,
    read_image,
    split_family,
    split_user_folder,
    to_tensor,
)
from edge.errors import EdgeError, InputError
from edge.families import get_family

needs = {f: pytest.mark.skipif(not (data_root() / d).exists(), reason=f"{d} not present")
         for f, d in [("face", "faces/orl"), ("asl", "asl/kaggle_alphabet"), ("tomato", "tomato/laboro_big"),
                      ("fer", "fer2013")]}


@pytest.mark.parametrize("family", ["face", pytest.param("asl", marks=needs["asl"]),
                                    pytest.param("tomato", marks=needs["tomato"])])
def test_no_group_on_two_sides(family):
    if family == "face" and not (data_root() / "faces/orl").exists():
        pytest.skip("faces not present")
    split = split_family(family)
    sides = {name: {s.group for s in part} for name, part in split.parts.items()}
    names = list(sides)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert not sides[a] & sides[b], (family, a, b)
    assert all(len(p) > 0 for p in split.parts.values())


@needs["face"]
def test_faces_hold_out_whole_people():
    split = split_family("face")
    assert len({s.group for s in split["test"]}) == 10
    assert len(split["test"]) == 100


@needs["fer"]
def test_fer_keeps_the_official_public_and_private_tests():
    """FER2013's PublicTest is val and its PrivateTest is test, whole (3,589 faces each, every class in both);
    training tests run on slices of it (conftest.fer_slice)."""
    split = split_family("fer")
    assert split.classes[3] == "happy" and len(split["val"]) == len(split["test"]) == 3589
    assert {s.label for s in split["test"]} == set(range(7)) == {s.label for s in split["val"]}
    assert all(s.group.startswith("test/") for s in split["test"]) and len(split["train"]) > 10000


def test_tomato_manifest_rows_that_cannot_be_used_are_counted_and_a_broken_manifest_is_refused(tmp_path):
    """Labels not found in the class list, blank labels, missing files: skipped and counted, the rest split; a manifest
    without the columns it needs, or with no usable row, gets a clear error instead of a KeyError."""
    import cv2

    root = tmp_path / "tomato" / "laboro_big"
    rows = ["file,label,source_image,bbox"]
    for c in ("green", "half_ripened", "fully_ripened"):
        (root / c).mkdir(parents=True)
        for i in range(12):
            cv2.imwrite(str(root / c / f"IMG_{i * 40:04d}_{c}.jpg"), np.full((8, 8, 3), i * 9, np.uint8))
            rows.append(f"{c}/IMG_{i * 40:04d}_{c}.jpg,{c},train/IMG_{i * 40:04d}_jpg.rf.x.jpg,0 0 8 8")
    rows += ["green/IMG_0001_green.jpg,overripe,train/IMG_0001_jpg.rf.x.jpg,0 0 8 8",  # not one of the classes
             "green/IMG_0002_green.jpg,,train/IMG_0002_jpg.rf.x.jpg,0 0 8 8",  # no label
             "green/gone.jpg,green,train/IMG_0003_jpg.rf.x.jpg,0 0 8 8",  # listed, not there
             "green/IMG_0000_green.jpg,green,,0 0 8 8"]  # no source photo: cannot be split without leaking
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    split = split_family("tomato", tmp_path)
    assert split.skipped == {"unknown label 'overripe'": 1, "row without a label": 1, "file listed but missing": 1,
                             "row without a file or source_image": 1}
    assert sum(len(p) for p in split.parts.values()) == 36
    (root / "manifest.csv").write_text("file,class\ngreen/IMG_0000_green.jpg,green\n")
    with pytest.raises(EdgeError, match="no column label, source_image"):
        split_family("tomato", tmp_path)
    (root / "manifest.csv").write_text("file,label,source_image\n")
    with pytest.raises(EdgeError, match="no usable row"):
        split_family("tomato", tmp_path)


@needs["fer"]
def test_fer_says_which_class_folders_are_missing_or_empty(tmp_path):
    import shutil

    src = data_root() / "fer2013"
    for part in ("train", "val", "test"):
        for c in ("happy", "sad"):
            (tmp_path / "fer2013" / part / c).mkdir(parents=True)
            for f in sorted((src / part / c).glob("*.png"))[:3]:
                shutil.copy(f, tmp_path / "fer2013" / part / c)
    (tmp_path / "fer2013" / "test" / "angry").mkdir()
    split = split_family("fer", tmp_path)
    assert len(split["train"]) == 6
    assert [split.classes[i] for i in sorted({s.label for s in split["train"]})] == ["happy", "sad"]
    assert split.skipped["empty class folder test/angry"] == 1 and "missing class folder train/angry" in split.skipped
    assert len(split.skipped) == 3 * 5


@needs["face"]
def test_faces_paper_protocol_splits_images_of_the_same_30_people():
    from edge.data import split_faces_paper

    split = split_faces_paper(seed=0)
    train, test = split["train"], split["test"]
    assert len(train) == 240 and len(test) == 60 and split["val"] == train
    assert {s.group for s in train} == {s.group for s in test} and len({s.group for s in test}) == 30
    assert not {s.path for s in train} & {s.path for s in test}  # no image on both sides
    assert all(sum(s.group == g for s in test) == 2 for g in {s.group for s in test})
    assert [s.path for s in split_faces_paper(seed=0)["test"]] == [s.path for s in test]  # seeded
    assert [s.path for s in split_faces_paper(seed=1)["test"]] != [s.path for s in test]


def test_user_folder_with_corrupt_and_empty(tmp_path):
    import cv2

    (tmp_path / "cats").mkdir()
    (tmp_path / "dogs").mkdir()
    (tmp_path / "empty").mkdir()
    cv2.imwrite(str(tmp_path / "cats" / "a.png"), np.full((20, 30, 3), 200, np.uint8))
    (tmp_path / "dogs" / "b.jpg").write_bytes(b"not a jpeg")
    classes, samples, skipped = list_image_folder(tmp_path)
    assert classes == ["cats", "dogs", "empty"] and len(samples) == 2
    assert skipped == {"empty class folder empty": 1}
    spec = get_family("tomato").input_spec(16)
    x, y, bad = load_batch(samples, spec)
    assert x.shape == (1, 3, 16, 16) and bad == 1 and list(y) == [0]
    with pytest.raises(InputError, match="cannot decode"):
        read_image(tmp_path / "dogs" / "b.jpg", "rgb")
    with pytest.raises(EdgeError, match="no class subfolders"):
        list_image_folder(tmp_path / "cats")


def test_user_folder_splits_keep_bursts_together_or_follow_the_users_split(tmp_path):
    """A flat folder of numbered camera frames: frames within one block of 20 never straddle two splits (one file per
    group, the rule before, put neighbouring frames on both sides); a small folder gets smaller blocks. A folder
    already split into train / test (e.g. another signer as test) is taken as given, val drawn from train's blocks;
    a test class train lacks is refused."""
    for c in ("a", "b"):
        (tmp_path / "flat" / c).mkdir(parents=True)
        for i in range(200):
            (tmp_path / "flat" / c / f"{c}_{i:03d}.png").write_bytes(b"")  # names are all a split looks at
    split = split_user_folder(tmp_path / "flat")
    sides: dict[tuple[str, int], set[str]] = {}
    for k in ("train", "val", "test"):
        for s in split[k]:
            sides.setdefault((s.path.parent.name, int(s.path.stem.split("_")[1]) // 20), set()).add(k)
    assert len(sides) == 20 and all(len(v) == 1 for v in sides.values())
    assert {k for v in sides.values() for k in v} == {"train", "val", "test"}
    assert sum(len(split[k]) for k in ("train", "val", "test")) == 400 and split.note.endswith("blocks of 20")
    small = tmp_path / "small"  # 12 frames a class: blocks of 20 would leave a split empty; smaller ones are used
    for c in ("a", "b"):
        (small / c).mkdir(parents=True)
        for i in range(12):
            (small / c / f"{c}_{i:03d}.png").write_bytes(b"")
    split = split_user_folder(small)
    assert all(split[k] for k in ("train", "val", "test")) and not split.note.endswith("blocks of 20")
    for part, n in (("train", 100), ("test", 10)):
        for c in ("a", "b"):
            (tmp_path / "given" / part / c).mkdir(parents=True)
            for i in range(n):
                (tmp_path / "given" / part / c / f"{part}{i:03d}.png").write_bytes(b"")
    split = split_user_folder(tmp_path / "given")
    assert split.classes == ["a", "b"] and len(split["test"]) == 20
    assert all(s.path.parts[-3] == "test" for s in split["test"])
    assert split["val"] and all(s.path.parts[-3] == "train" for s in split["train"] + split["val"])
    assert len(split["train"]) + len(split["val"]) == 200
    (tmp_path / "given" / "test" / "c").mkdir()
    (tmp_path / "given" / "test" / "c" / "x.png").write_bytes(b"")
    with pytest.raises(EdgeError, match="class folders train lacks: c"):
        split_user_folder(tmp_path / "given")


def test_to_tensor_normalises_by_spec():
    spec = get_family("fer").input_spec(8)
    x = to_tensor([np.full((48, 48), 255, np.uint8), np.zeros((10, 12, 3), np.uint8)], spec)
    assert x.shape == (2, 1, 8, 8) and x.dtype == np.float32
    np.testing.assert_allclose(x[0], (1 - spec.mean[0]) / spec.std[0], rtol=1e-5)
    np.testing.assert_allclose(x[1], (0 - spec.mean[0]) / spec.std[0], rtol=1e-5)


def test_clahe_in_the_spec_evens_out_side_light_on_gray_and_rgb():
    from edge.data import equalize
    from edge.manifest import InputSpec

    rng = np.random.default_rng(0)
    face = rng.integers(60, 200, (64, 64)).astype(np.uint8)
    lit = (face * np.linspace(0.25, 1.0, 64)[None]).astype(np.uint8)  # dark on the left, as hard side light
    spec = get_family("face").input_spec(64)
    assert spec.clahe == 0  # off unless a run was trained with it
    plain = to_tensor([lit], spec)
    spec = InputSpec.from_dict({**spec.__dict__, "clahe": 2.0})  # as a manifest carries it
    even = to_tensor([lit], spec)
    gap = [abs(float(t[0, 0, :, :16].mean() - t[0, 0, :, -16:].mean())) for t in (plain, even)]
    assert gap[1] < 0.7 * gap[0]
    np.testing.assert_allclose(even[0, 0], (equalize(lit, 2.0) / 255.0 - spec.mean[0]) / spec.std[0], atol=1e-5)
    rgb = np.stack([lit] * 3, axis=-1)
    out = equalize(rgb, 2.0)
    assert out.shape == rgb.shape and out.dtype == np.uint8
    side_gap = [abs(float(im[:, :16].mean() - im[:, -16:].mean())) for im in (rgb, out)]
    assert side_gap[1] < 0.7 * side_gap[0]


def test_equalize_batch_is_equalize_on_every_picture_of_an_nchw_batch():
    from edge.data import equalize, equalize_batch

    rng = np.random.default_rng(1)
    gray = (rng.integers(40, 220, (3, 1, 24, 24)) * np.linspace(0.3, 1, 24)).astype(np.uint8)
    rgb = (rng.integers(40, 220, (2, 3, 24, 24)) * np.linspace(0.3, 1, 24)).astype(np.uint8)
    assert equalize_batch(gray, 0.0) is gray  # off
    got = equalize_batch(gray, 2.0)
    assert got.shape == gray.shape and got.dtype == np.uint8 and not np.array_equal(got, gray)
    for g, im in zip(got, gray):
        np.testing.assert_array_equal(g[0], equalize(im[0], 2.0))
    got = equalize_batch(rgb, 2.0)
    for g, im in zip(got, rgb):
        np.testing.assert_array_equal(g.transpose(1, 2, 0), equalize(np.ascontiguousarray(im.transpose(1, 2, 0)), 2.0))
