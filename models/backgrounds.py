"""Put the hands of a one-background data set in front of other backgrounds.

The ASL frames were all taken in front of one wall and window, so a model can learn that room.
``hand_mask`` cuts the hand out (Otsu on the YCrCb red-difference channel seeds GrabCut), masks are
decoded once and cached like the images, and ``composite`` pastes hands on backgrounds drawn from a
pool during training. Pools come from named sources so that an evaluation can use sources that
training never saw: ``TRAIN_SOURCES`` for training, ``HELDOUT_SOURCES`` for the "unseen
backgrounds" test the card reports.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from edge.data import Sample, data_root, read_image
from edge.errors import EdgeError, InputError

TRAIN_SOURCES = ("procedural", "tomato", "fer")
HELDOUT_SOURCES = ("orl", "scenes")


def hand_mask(bgr: np.ndarray, iterations: int = 3) -> np.ndarray:
    """uint8 {0, 1} mask of the skin-coloured foreground (hand and arm) of a colour image."""
    import cv2

    if bgr.ndim != 3 or bgr.shape[2] != 3:
        raise EdgeError(f"hand_mask needs a colour (H, W, 3) image, got shape {bgr.shape}")
    cr = cv2.GaussianBlur(cv2.cvtColor(bgr, cv2.COLOR_BGR2YCrCb)[..., 1], (5, 5), 0)
    th, _ = cv2.threshold(cr, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    skin = (cr > th).astype(np.uint8)
    if skin.sum() < 0.01 * skin.size or skin.sum() > 0.95 * skin.size:
        return skin  # nothing (or everything) stands out: GrabCut has no seeds on one side
    mask = np.full(skin.shape, cv2.GC_PR_BGD, np.uint8)
    mask[skin == 1] = cv2.GC_PR_FGD
    mask[cv2.erode(skin, np.ones((9, 9), np.uint8)) == 1] = cv2.GC_FGD
    mask[cv2.dilate(skin, np.ones((15, 15), np.uint8)) == 0] = cv2.GC_BGD
    bgm, fgm = np.zeros((1, 65)), np.zeros((1, 65))
    try:
        cv2.grabCut(bgr, mask, None, bgm, fgm, iterations, cv2.GC_INIT_WITH_MASK)
    except cv2.error:
        return skin
    return _drop_top_strips(((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)).astype(np.uint8))


def _drop_top_strips(mask: np.ndarray, top: float = 0.45) -> np.ndarray:
    """Drop parts that lie wholly in the top of the frame: the wooden window frame, not a hand
    (hands come in with an arm from below; a hand touching the frame keeps both)."""
    import cv2

    n, lab, st, _ = cv2.connectedComponentsWithStats(mask)
    keep = np.zeros(n, bool)
    for i in range(1, n):
        keep[i] = st[i, cv2.CC_STAT_TOP] + st[i, cv2.CC_STAT_HEIGHT] > top * mask.shape[0]
    return keep[lab].astype(np.uint8)


def cache_masks(samples: list[Sample], size: int, cache_dir: Path, tag: str) -> np.ndarray:
    """uint8 (N, 1, size, size) soft masks (0-255), cached by file list and size.

    Unreadable files are left out, as ``cache_images`` leaves them out, so the rows line up.
    """
    import cv2

    key = hashlib.sha256("\n".join(str(s.path) for s in samples).encode() + f"mask-v1-{size}".encode()).hexdigest()[:16]
    path = cache_dir / f"{tag}-mask-{size}-{key}.npy"
    if path.exists():
        return np.load(path)
    out = np.zeros((len(samples), 1, size, size), np.uint8)
    n = 0
    for s in samples:
        try:
            bgr = np.ascontiguousarray(read_image(s.path, "rgb")[..., ::-1])
        except InputError:
            continue
        m = cv2.resize(hand_mask(bgr).astype(np.float32), (size, size), interpolation=cv2.INTER_AREA)
        out[n, 0] = np.clip(cv2.GaussianBlur(m, (3, 3), 0) * 255, 0, 255).astype(np.uint8)
        n += 1
    out = out[:n]
    cache_dir.mkdir(parents=True, exist_ok=True)
    np.save(path, out)
    return out


def _procedural(n: int, size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Smooth gradients, blobs, rectangles and stripes: walls, furniture, clothes, light falloff."""
    import cv2

    out = []
    for _ in range(n):
        g = rng.integers(2, 9)
        img = cv2.resize(rng.random((g, g, 3)).astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
        for _ in range(rng.integers(0, 6)):
            x0, y0 = rng.integers(0, size, 2)
            w, h = rng.integers(size // 8, size, 2)
            img[y0 : y0 + h, x0 : x0 + w] = rng.random(3) * rng.uniform(0.5, 1.0)
        if rng.random() < 0.3:
            period = rng.integers(4, size // 3)
            ang = rng.uniform(0, np.pi)
            yy, xx = np.mgrid[:size, :size]
            stripes = (np.sin((xx * np.cos(ang) + yy * np.sin(ang)) * 2 * np.pi / period) > 0)[..., None]
            img = np.where(stripes, img, img * rng.uniform(0.3, 0.9))
        img = img + rng.normal(0, rng.uniform(0, 0.05), img.shape)
        out.append(np.clip(img * 255, 0, 255).astype(np.uint8)[..., ::-1])
    return out


def _files(pattern_root: Path, n: int, rng: np.random.Generator) -> list[Path]:
    files = sorted(p for p in pattern_root.rglob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png", ".pgm"})
    if not files:
        return []
    return [files[i] for i in rng.choice(len(files), size=min(n, len(files)), replace=False)]


def _random_crop(img: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    import cv2

    h, w = img.shape[:2]
    side = int(min(h, w) * rng.uniform(0.3, 1.0))
    y, x = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
    return cv2.resize(img[y : y + side, x : x + side], (size, size), interpolation=cv2.INTER_AREA)


def _source_images(source: str, n: int, size: int, rng: np.random.Generator, root: Path) -> list[np.ndarray]:
    import cv2

    if source == "procedural":
        return _procedural(n, size, rng)
    if source == "scenes":  # the two photos scikit-learn ships (a temple, a flower), many crops of each
        try:
            from sklearn.datasets import load_sample_images
        except ImportError:
            return []
        photos = [im[..., ::-1] for im in load_sample_images().images]
        return [_random_crop(photos[i % len(photos)], size, rng) for i in range(n)]
    folder = {"tomato": root / "tomato" / "laboro_big", "fer": root / "fer2013" / "train",
              "orl": root / "faces" / "orl"}.get(source)
    if folder is None:
        raise EdgeError(f"unknown background source '{source}'; have procedural, scenes, tomato, fer, orl")
    out = []
    for f in _files(folder, n, rng):
        img = cv2.imread(str(f), cv2.IMREAD_COLOR)
        if img is not None:
            out.append(_random_crop(img, size, rng))
    return out


def background_pool(size: int, color: str, sources: tuple[str, ...], per_source: int = 400, seed: int = 0,
                    root: Path | None = None) -> np.ndarray:
    """uint8 (M, C, size, size) backgrounds from the named sources; sources with no files are skipped."""
    import cv2

    rng = np.random.default_rng(seed)
    root = root or data_root()
    imgs: list[np.ndarray] = []
    for s in sources:
        imgs += _source_images(s, per_source, size, rng, root)
    if not imgs:
        raise EdgeError(f"no background images from {', '.join(sources)} (data root {root})")
    if color == "gray":
        return np.stack([cv2.cvtColor(i, cv2.COLOR_BGR2GRAY)[None] for i in imgs])
    return np.stack([cv2.cvtColor(i, cv2.COLOR_BGR2RGB).transpose(2, 0, 1) for i in imgs])


def composite(x: np.ndarray, masks: np.ndarray, pool: np.ndarray, rng: Any, p: float = 1.0,
              fg_gain: tuple[float, float] | None = None) -> np.ndarray:
    """Paste each image's foreground on a random background from the pool (with probability p).

    x, masks, pool are uint8 (N, C, H, W), (N, 1, H, W), (M, C, H, W); ``rng`` is a numpy Generator.
    Backgrounds are flipped at random and their brightness shifted so that the hand is not always
    the darker part of the picture; ``fg_gain`` (training) also scales the hand's brightness
    (other skin tones, other light on the hand).
    """
    n = len(x)
    pick = rng.random(n) < p
    if not pick.any():
        return x
    bg = pool[rng.integers(0, len(pool), n)].astype(np.float32)
    flip = rng.random(n) < 0.5
    bg[flip] = bg[flip][..., ::-1]
    bg = np.clip(bg * rng.uniform(0.5, 1.3, (n, 1, 1, 1)), 0, 255)
    m = masks.astype(np.float32) / 255.0
    fg = x.astype(np.float32)
    if fg_gain is not None:
        fg = np.clip(fg * rng.uniform(*fg_gain, (n, 1, 1, 1)), 0, 255)
    mixed = m * fg + (1 - m) * bg
    out = x.copy()
    out[pick] = np.clip(mixed[pick] + 0.5, 0, 255).astype(np.uint8)
    return out
