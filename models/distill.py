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


def teacher_embeddings(x: np.ndarray, teacher: str, cache_dir: Path, log: Any = print) -> np.ndarray:
    """L2-normalised teacher vectors (N, 128) for gray uint8 face crops ``x`` (N, 1, H, W)."""
    if teacher not in TEACHERS:
        raise EdgeError(f"unknown teacher '{teacher}': {', '.join(TEACHERS)}")
    key = hashlib.sha256(x.tobytes()).hexdigest()[:16]
    path = cache_dir / f"teacher-{teacher}-{len(x)}-{key}.npy"
    if path.exists():
        return np.load(path)
    import cv2

    from edge.attend.embed import DlibEmbedder

    emb = DlibEmbedder()
    out = np.empty((len(x), 128), np.float32)
    log(f"teacher {teacher}: embedding {len(x)} faces (once; cached in {path.name})")
    for i in tqdm(range(len(x)), desc=f"teacher {teacher}", file=sys.stderr, mininterval=5, leave=False):
        # the face fills the crop: the box is the whole image, at dlib's own chip size
        face = cv2.resize(x[i, 0], (150, 150), interpolation=cv2.INTER_LINEAR)
        out[i] = emb.embed(face, [(0, 0, 150, 150)], [])[0]
    out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
    cache_dir.mkdir(parents=True, exist_ok=True)
    np.save(path, out)
    return out
