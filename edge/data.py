"""Find the shared data sets, read images, split without leaks, preprocess by manifest (no torch).

Training, export calibration and the benchmark's accuracy column all take their splits from
here, so a test image never becomes a calibration or training image.
"""

from __future__ import annotations

import csv
import hashlib
import os
import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from edge.errors import EdgeError, InputError
from edge.manifest import InputSpec

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".pgm", ".bmp", ".webp", ".tif", ".tiff"}
SPLITS = ("train", "val", "test")
USER_FRACTIONS = {"train": 0.7, "val": 0.15, "test": 0.15}
BLOCKS = (20, 10, 5, 2, 1)  # file-name block sizes a split tries, largest first


def data_root() -> Path:
    """``$EDGE_DATA``, else ``../shared/data`` next to the checkout, else next to the cwd."""
    env = os.environ.get("EDGE_DATA")
    if env:
        return Path(env)
    beside_repo = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    return beside_repo if beside_repo.exists() else Path.cwd().parent / "shared" / "data"


@dataclass
class Sample:
    path: Path
    label: int
    group: str  # samples of one group (person, photo, frame block) stay on one side of a split


@dataclass
class Split:
    """Samples per split name plus what was skipped and why."""

    classes: list[str]
    parts: dict[str, list[Sample]]
    skipped: dict[str, int] = field(default_factory=dict)
    note: str = ""  # how it was split, where that was chosen for the data (a user's folder)

    def __getitem__(self, name: str) -> list[Sample]:
        return self.parts[name]


def _stable_fraction(key: str, salt: str = "edge") -> float:
    """A deterministic number in [0, 1) from a string (same on every machine)."""
    return int(hashlib.sha256(f"{salt}:{key}".encode()).hexdigest()[:8], 16) / 2**32


def _assign(groups: Iterable[str], fractions: dict[str, float], salt: str) -> dict[str, str]:
    """Map each group to a split by a stable hash, in the given proportions."""
    order = list(fractions.items())
    out = {}
    for g in groups:
        r, acc = _stable_fraction(g, salt), 0.0
        for name, frac in order:
            acc += frac
            if r < acc:
                out[g] = name
                break
        else:
            out[g] = order[-1][0]
    return out


def list_image_folder(root: Path) -> tuple[list[str], list[Sample], dict[str, int]]:
    """A user's folder with one subfolder per class -> classes and samples (group = file stem)."""
    root = Path(root)
    if not root.is_dir():
        raise EdgeError(f"data folder not found: {root}")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise EdgeError(f"{root} has no class subfolders (expected {root}/<class>/<image>)")
    samples, skipped = [], {}
    for i, c in enumerate(classes):
        files = sorted(p for p in (root / c).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            skipped[f"empty class folder {c}"] = 1
        samples += [Sample(p, i, p.stem) for p in files]
    if not samples:
        raise EdgeError(f"no images under {root}")
    return classes, samples, skipped


def _block_of(stem: str, size: int = 20) -> str:
    """Frames numbered close together are near-duplicates: group them in blocks."""
    m = re.match(r"^(.*?)(\d+)$", stem)
    return f"{m.group(1)}#{int(m.group(2)) // size}" if m else stem


def split_family(family: str, root: Path | None = None, fractions: dict[str, float] | None = None) -> Split:
    """The leak-free split for each shared data set (see each function's rule)."""
    root = Path(root) if root else data_root()
    if family == "face":
        return _split_faces(root / "faces" / "orl")
    if family == "asl":
        return _split_blocks(root / "asl" / "kaggle_alphabet", fractions or USER_FRACTIONS, salt="asl")
    if family == "fer":
        return _split_fer(root / "fer2013")
    if family == "tomato":
        return _split_tomato(root / "tomato" / "laboro_big", fractions)
    raise EdgeError(f"no image data set for family '{family}'")


def split_user_folder(root: Path) -> Split:
    """A user's own folder, split without leaking near-duplicates. Either already split, ``train/<class>/...`` with
    ``val/`` and ``test/`` beside it (each optional: a missing one is drawn from train, 15 %; e.g. a test folder of
    another signer, farm or camera), or one subfolder per class, split 70/15/15. Drawn by file-name block: files whose
    names differ only in a number within the same 20 (``a_040``..``a_059``, a burst of camera frames) stay on one
    side; a folder with too few blocks for that gets smaller ones (``BLOCKS``), said in ``note``. A class folder in
    val or test that train lacks is refused."""
    root = Path(root)
    if not (root / "train").is_dir():
        return _split_blocks(root, USER_FRACTIONS, "user")
    split = _split_blocks(root / "train", USER_FRACTIONS, "user",
                          given=[k for k in SPLITS[1:] if (root / k).is_dir()])
    for k in SPLITS[1:]:
        if not (root / k).is_dir():
            continue
        cls, samples, skipped = list_image_folder(root / k)
        extra = sorted(set(cls) - set(split.classes))
        if extra:
            raise EdgeError(f"{root / k} has class folders train lacks: {', '.join(extra)}")
        split.parts[k] = [Sample(x.path, split.classes.index(cls[x.label]), x.group) for x in samples]
        split.skipped.update({f"{k}: {why}": n for why, n in skipped.items()})
        split.note += f"; {k}: {root / k} as given"
    return split


def _split_blocks(root: Path, fractions: dict[str, float], salt: str, given: list[str] | None = None) -> Split:
    """One subfolder per class, split in ``fractions`` by file-name block: the largest of ``BLOCKS`` that gives each
    drawn split at least half its share and train every class (few blocks split unevenly). The splits in ``given``
    come from elsewhere and are left empty here."""
    classes, samples, skipped = list_image_folder(root)
    drawn = {k: f for k, f in fractions.items() if k not in (given or [])}
    drawn = {k: f / sum(drawn.values()) for k, f in drawn.items()}
    for size in BLOCKS:
        for x in samples:
            x.group = f"{classes[x.label]}/{_block_of(x.path.stem, size)}"
        where = _assign({x.group for x in samples}, drawn, salt)
        parts = {k: [x for x in samples if where[x.group] == k] for k in fractions}
        fair = all(len(parts[k]) >= max(1.0, f * len(samples) / 2) for k, f in drawn.items())
        if fair and {x.label for x in parts["train"]} == {x.label for x in samples}:
            break
    return Split(classes, parts, skipped, f"{', '.join(drawn)} drawn by file-name blocks of {size}")


def split_for(family: str, data: str | Path | None) -> Split:
    """The split a run was trained on: its user folder's (``data``, as the checkpoint and manifest record it) or the
    family's shared data set. Export calibration, parity, the int8 accuracy gate, ``edge calibrate`` and the bench
    all take it from here, so a model trained on a user's pictures is checked on them, not on the shared set."""
    if not data:
        return split_family(family)
    root = Path(data)
    if not root.is_dir():
        raise EdgeError(f"the model was trained on {root}, which is not here (its split is drawn from that folder)")
    return split_user_people(root) if family == "face" else split_user_folder(root)


def split_user_people(root: Path) -> Split:
    """A user's faces, one folder per person, split by whole people (as ORL's): about 25 % of them (at least 2) never
    seen in training are the test, 15 % (at least 2) the validation people that choose the threshold, drawn by a
    stable hash of the folder name; or ``train/ val/ test/`` folders of people as given."""
    root = Path(root)
    if (root / "train").is_dir():
        parts: dict[str, list[Sample]] = {}
        names: list[str] = []
        for k in SPLITS:
            if not (root / k).is_dir():
                raise EdgeError(f"{root}: a split face folder needs train/, val/ and test/ (people in each)")
            people, samples, _ = list_image_folder(root / k)
            parts[k] = [Sample(x.path, len(names) + x.label, f"{k}/{people[x.label]}") for x in samples]
            names += [f"{k}/{p}" for p in people]
        return Split(names, parts, note="train/val/test people as given")
    people, samples, skipped = list_image_folder(root)
    with_pictures = sorted({x.label for x in samples}, key=lambda i: _stable_fraction(people[i], "face"))
    if len(with_pictures) < 6:
        raise EdgeError(f"{root}: {len(with_pictures)} people with pictures; face training holds whole people out "
                        "for validation and test, so it needs at least 6 (2 to train on, 2 each to judge)")
    n_test = max(2, round(0.25 * len(with_pictures)))
    n_val = max(2, round(0.15 * len(with_pictures)))
    where = {i: "test" for i in with_pictures[:n_test]} | {i: "val" for i in with_pictures[n_test:n_test + n_val]}
    parts = {k: [x for x in samples if where.get(x.label, "train") == k] for k in SPLITS}
    return Split(people, parts, skipped, f"people held out by name hash: {n_test} test, {n_val} val, "
                 f"{len(with_pictures) - n_test - n_val} train")


def _split_faces(root: Path, test_people: int = 10) -> Split:
    """Hold out whole identities: the last ``test_people`` (by number) never appear in training."""
    if not root.is_dir():
        raise EdgeError(f"face data not found: {root}")
    people = sorted((d for d in root.iterdir() if d.is_dir()),
                    key=lambda d: (int(re.sub(r"\D", "", d.name) or 0), d.name))
    classes = [d.name for d in people]
    parts: dict[str, list[Sample]] = {"train": [], "val": [], "test": []}
    for i, d in enumerate(people):
        files = sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        part = "test" if i >= len(people) - test_people else ("val" if i >= len(people) - test_people - 4 else "train")
        parts[part] += [Sample(p, i, d.name) for p in files]
    return Split(classes, parts)


def split_faces_paper(root: Path | None = None, people: int = 30, train_per_person: int = 8, seed: int = 0,
                      folder: Path | None = None) -> Split:
    """The paper's protocol: the first ``people`` identities, each person's images split 8:2 at random (seeded).
    Every test person is also a training person, so this measures recognising seen people; the train images
    are also the "val" part (there is no separate validation set in that protocol). ``folder``: a user's folder of
    person folders instead of ORL (each person's pictures 8:2 likewise)."""
    base = _split_faces(Path(folder) if folder else (Path(root) if root else data_root()) / "faces" / "orl")
    by_person: dict[int, list[Sample]] = {}
    for part in ("train", "val", "test"):
        for smp in base.parts[part]:
            by_person.setdefault(smp.label, []).append(smp)
    rng = random.Random(seed)
    parts: dict[str, list[Sample]] = {"train": [], "val": [], "test": []}
    for label in sorted(by_person)[:people]:
        files = sorted(by_person[label], key=lambda smp: smp.path.name)
        rng.shuffle(files)
        k = train_per_person if folder is None else max(1, round(0.8 * len(files)))
        parts["train"] += files[:k]
        parts["test"] += files[k:]
    parts["val"] = list(parts["train"])
    return Split(base.classes, parts)


def _split_fer(root: Path) -> Split:
    """The official FER2013 usage: Training / PublicTest (val) / PrivateTest (test)."""
    from edge.families import FER_CLASSES

    parts: dict[str, list[Sample]] = {}
    skipped: dict[str, int] = {}
    for part in ("train", "val", "test"):
        d = root / part
        if not d.is_dir():
            raise EdgeError(f"FER2013 split not found: {d}")
        parts[part] = []
        for i, c in enumerate(FER_CLASSES):
            found = sorted((d / c).glob("*.png"))
            if not found:  # said, not silently a class with no pictures
                why = "missing class folder" if not (d / c).is_dir() else "empty class folder"
                skipped[f"{why} {part}/{c}"] = 1
            parts[part] += [Sample(p, i, f"{part}/{c}/{p.stem}") for p in found]
    return Split(list(FER_CLASSES), parts, skipped)


def _split_tomato(root: Path, fractions: dict[str, float] | None) -> Split:
    """Split by source photo, and keep time-adjacent photos (IMG_0983..IMG_0992) together too."""
    from edge.families import TOMATO_CLASSES

    manifest = root / "manifest.csv"
    if not manifest.exists():
        raise EdgeError(f"tomato manifest not found: {manifest}")
    fractions = fractions or {"train": 0.7, "val": 0.15, "test": 0.15}
    samples: list[Sample] = []
    skipped: dict[str, int] = {}

    def skip(why: str) -> None:
        skipped[why] = skipped.get(why, 0) + 1

    with open(manifest, newline="", encoding="utf-8", errors="replace") as fh:
        reader = csv.DictReader(fh)
        lacking = [c for c in ("file", "label", "source_image") if c not in (reader.fieldnames or [])]
        if lacking:
            raise EdgeError(f"{manifest}: no column {', '.join(lacking)} (have: {', '.join(reader.fieldnames or [])}); "
                            "it needs file, label and source_image (the photo each crop came from)")
        for rec in reader:
            label, file, photo = ((rec.get(k) or "").strip() for k in ("label", "file", "source_image"))
            if label not in TOMATO_CLASSES:
                skip(f"unknown label {label!r}" if label else "row without a label")
                continue
            if not file or not photo:
                skip("row without a file or source_image")
                continue
            path = root / file
            if not path.is_file():
                skip("file listed but missing")
                continue
            samples.append(Sample(path, TOMATO_CLASSES.index(label), _block_of(Path(photo).name.split("_jpg")[0], 10)))
    if not samples:
        raise EdgeError(f"{manifest}: no usable row ({skipped or 'the file lists no crops'})")
    where = _assign({s.group for s in samples}, fractions, "tomato")
    parts: dict[str, list[Sample]] = {k: [] for k in fractions}
    for s in samples:
        parts[where[s.group]].append(s)
    return Split(list(TOMATO_CLASSES), parts, skipped)


def read_image(path: Path | str, color: str) -> np.ndarray:
    """Read an image as uint8 gray (H, W) or RGB (H, W, 3); corrupt files raise InputError."""
    data = np.fromfile(str(path), dtype=np.uint8) if Path(path).exists() else None
    if data is None:
        raise InputError(f"image not found: {path}")
    img = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE if color == "gray" else cv2.IMREAD_COLOR)
    if img is None:
        raise InputError(f"cannot decode image {path} (corrupt or not an image)")
    return img if color == "gray" else cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def equalize(img: np.ndarray, clip: float) -> np.ndarray:
    """uint8 gray (H, W) or RGB (H, W, 3) -> the same with CLAHE (4x4 tiles, clip limit ``clip``) on the gray
    level (RGB: on Lab's lightness). Training and every runtime call this one function."""
    clahe = cv2.createCLAHE(clipLimit=float(clip), tileGridSize=(4, 4))
    if img.ndim == 2:
        return clahe.apply(img)
    lab = cv2.cvtColor(img, cv2.COLOR_RGB2LAB)
    lab[..., 0] = clahe.apply(np.ascontiguousarray(lab[..., 0]))
    return cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)


def equalize_batch(x: np.ndarray, clip: float) -> np.ndarray:
    """uint8 (N, C, H, W), C 1 or 3 -> the same with ``equalize`` on every image (no-op when ``clip`` is 0)."""
    if not clip:
        return x
    if x.shape[1] == 1:
        return np.stack([equalize(im[0], clip)[None] for im in x])
    return np.stack([equalize(np.ascontiguousarray(im.transpose(1, 2, 0)), clip).transpose(2, 0, 1) for im in x])


def to_tensor(images: Sequence[np.ndarray], spec: InputSpec) -> np.ndarray:
    """uint8 images (gray HxW or RGB HxWx3, any size) -> the float NCHW batch the spec describes."""
    if spec.layout != "NCHW":
        raise InputError("to_tensor() is for image models")
    h, w = spec.resize or spec.shape[2:]
    c = spec.shape[1]
    out = np.empty((len(images), c, h, w), dtype=np.float32)
    mean = np.asarray(spec.mean or [0.0] * c, dtype=np.float32).reshape(c, 1, 1)
    std = np.asarray(spec.std or [1.0] * c, dtype=np.float32).reshape(c, 1, 1)
    for i, img in enumerate(images):
        if img is None or img.size == 0:
            raise InputError(f"image {i} is empty")
        if c == 1 and img.ndim == 3:
            img = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
        elif c == 3 and img.ndim == 2:
            img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
        interp = cv2.INTER_AREA if img.shape[0] > h else cv2.INTER_LINEAR
        img = cv2.resize(img, (w, h), interpolation=interp)
        if spec.clahe:
            img = equalize(img, spec.clahe)
        x = img.astype(np.float32) * spec.scale
        x = x[None] if x.ndim == 2 else x.transpose(2, 0, 1)
        out[i] = (x - mean) / std
    return out


def load_batch(samples: Sequence[Sample], spec: InputSpec) -> tuple[np.ndarray, np.ndarray, int]:
    """Read and preprocess samples; unreadable files are skipped and counted."""
    images, labels, bad = [], [], 0
    for s in samples:
        try:
            images.append(read_image(s.path, spec.color))
            labels.append(s.label)
        except InputError:
            bad += 1
    if not images:
        raise EdgeError("none of the images could be read")
    return to_tensor(images, spec), np.asarray(labels, dtype=np.int64), bad


def take_spread(samples: Sequence[Sample], n: int) -> list[Sample]:
    """Up to n samples spread evenly over the (class-sorted) list: every class gets its share."""
    if n >= len(samples):
        return list(samples)
    idx = np.linspace(0, len(samples) - 1, n).round().astype(int)
    return [samples[i] for i in idx]
