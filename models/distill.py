"""Teacher embeddings for distilling a face embedder from a bigger one.

ORL gives 25 training identities: too few for an open-set face embedding. A teacher that learnt from
thousands of people (dlib's ResNet descriptor, from the ``face-recognition-models`` package) labels many
more faces, FER2013's photos of different people among them, and the student learns to point where the
teacher points. Teacher vectors are computed once and cached beside the image cache.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from edge.errors import EdgeError

TEACHERS = ("dlib",)


def _image_keys(x: np.ndarray) -> list[str]:
    """One key per image (its pixels' hash), so cached teacher vectors serve any selection of faces."""
    return [hashlib.blake2b(im.tobytes(), digest_size=16).hexdigest() for im in x]


def _load_index(path: Path) -> dict[str, np.ndarray]:
    if not path.exists():
        return {}
    z = np.load(path)
    return dict(zip(z["keys"].tolist(), z["vectors"], strict=True))


def teacher_embeddings(x: np.ndarray, teacher: str, cache_dir: Path, log: Any = print) -> np.ndarray:
    """L2-normalised teacher vectors (N, 128) for gray uint8 face crops ``x`` (N, 1, H, W).

    Vectors are cached per image in ``cache_dir/teacher-<teacher>.npz``: a bigger or other selection of faces only
    computes the faces not seen before.
    """
    if teacher not in TEACHERS:
        raise EdgeError(f"unknown teacher '{teacher}': {', '.join(TEACHERS)}")
    path = cache_dir / f"teacher-{teacher}.npz"
    keys = _image_keys(x)
    index = _load_index(path)
    todo = [i for i, k in enumerate(keys) if k not in index]
    if todo:
        import cv2

        from edge.attend.embed import DlibEmbedder

        emb = DlibEmbedder()
        log(f"teacher {teacher}: embedding {len(todo)} of {len(x)} faces (once; cached in {path.name})")
        for n, i in enumerate(tqdm(todo, desc=f"teacher {teacher}", file=sys.stderr, mininterval=5, leave=False)):
            # the face fills the crop: the box is the whole image, at dlib's own chip size
            face = cv2.resize(x[i, 0], (150, 150), interpolation=cv2.INTER_LINEAR)
            v = emb.embed(face, [(0, 0, 150, 150)], [])[0]
            index[keys[i]] = v / max(float(np.linalg.norm(v)), 1e-12)
            if (n + 1) % 2000 == 0 or n + 1 == len(todo):  # a long first run keeps what it did if stopped
                _save_index(path, index)
    return np.stack([index[k] for k in keys]).astype(np.float32)


def _save_index(path: Path, index: dict[str, np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, keys=np.array(list(index)), vectors=np.stack(list(index.values())))
    tmp.replace(path)
