"""Face embedders for attendance: the zoo's Siamese SqueezeNet (edge.runtime) and dlib's ResNet (second backend).

Both return vectors compared by Euclidean distance, and each carries the threshold it decides with: the Siamese
one (L2-normalised) from its manifest, chosen on validation identities; dlib's 0.6 is the value its authors publish
for their 128-d descriptor (kept at dlib's own scale).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge.data import to_tensor
from edge.errors import EdgeError, MissingDependency
from edge.faces import Box


@dataclass
class SiameseEmbedder:
    """The zoo face model (or any exported ``embed`` artifact) through edge.runtime."""

    artifact: Path | str | None = None
    threads: int = 1
    name: str = "siamese"
    model: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        from edge.manifest import sha256_of
        from edge.prestep import prestep_spec
        from edge.runtime import load
        from edge.zoo import resolve_model

        self.model = load(self.artifact or resolve_model("face"), threads=self.threads)
        m = self.model.manifest
        # galleries are per model: vectors from another face model (an upgraded zoo, a retrained one) don't compare
        if self.name == "siamese":
            self.name = f"siamese-{sha256_of(self.model.artifact)[:10]}"
        if m.task != "embed":
            raise EdgeError(f"{self.model.artifact.name} is a {m.task} model, not a face embedder")
        th = m.threshold or {}
        if th.get("metric", "euclidean") != "euclidean" or "distance" not in th:
            raise EdgeError(f"{self.model.artifact.name} has no Euclidean distance threshold in its manifest")
        self.threshold = float(th["distance"])
        self.prestep = prestep_spec(m)  # the manifest's, or the face family's default

    def embed(self, frame: np.ndarray, boxes: list[Box], crops: list[np.ndarray]) -> np.ndarray:
        if not crops:
            return np.zeros((0, self.model.manifest.embedding_size or 0), np.float32)
        v = self.model.predict(to_tensor(crops, self.model.manifest.input)).astype(np.float32)
        return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)


def dlib_model_dir() -> Path:
    from edge.zoo import package_dir

    root = package_dir("face_recognition_models")
    if root is None:
        raise MissingDependency("face-recognition-models", "attend", "the dlib embedder")
    return root / "models"


@dataclass
class DlibEmbedder:
    """dlib's 5-landmark alignment + ResNet-34 face descriptor (the face_recognition package's pipeline)."""

    name: str = "dlib"
    threshold: float = 0.6
    jitter: int = 0
    prestep: dict = field(default_factory=lambda: {"kind": "face", "margin": 0.0, "square": False})

    def __post_init__(self) -> None:
        try:
            import dlib
        except ImportError:
            raise MissingDependency("dlib-bin", "attend", "the dlib embedder") from None
        d = dlib_model_dir()
        self._dlib = dlib
        self.shape = dlib.shape_predictor(str(d / "shape_predictor_5_face_landmarks.dat"))
        self.net = dlib.face_recognition_model_v1(str(d / "dlib_face_recognition_resnet_model_v1.dat"))

    def embed(self, frame: np.ndarray, boxes: list[Box], crops: list[np.ndarray]) -> np.ndarray:
        out = []
        img = np.ascontiguousarray(frame if frame.ndim == 3 else np.repeat(frame[..., None], 3, axis=2))
        for x, y, w, h in boxes:
            rect = self._dlib.rectangle(int(x), int(y), int(x + w), int(y + h))
            shape = self.shape(img, rect)
            out.append(np.asarray(self.net.compute_face_descriptor(img, shape, self.jitter), np.float32))
        return np.stack(out) if out else np.zeros((0, 128), np.float32)


def make_embedder(name: str, artifact: str | None = None, threads: int = 1) -> SiameseEmbedder | DlibEmbedder:
    if name == "siamese":
        return SiameseEmbedder(artifact, threads=threads)
    if name == "dlib":
        return DlibEmbedder()
    raise EdgeError(f"unknown embedder '{name}': siamese (zoo model, default) or dlib")
