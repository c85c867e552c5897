"""Artifact manifests: the JSON file next to every exported model.

The runtime reads the manifest, so preprocessing is never guessed.  An artifact at
``path`` (a file, or a folder for NCNN) has its manifest at ``path + ".json"``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edge.errors import EdgeError

SCHEMA = 1


@dataclass
class InputSpec:
    """How raw data becomes the tensor the model expects."""

    shape: list[int | None]  # e.g. [None, 1, 96, 96]; None is the dynamic batch
    dtype: str = "float32"
    layout: str = "NCHW"  # or "NF" for tabular rows
    color: str = "gray"  # gray | rgb | none
    resize: list[int] | None = None  # [height, width]
    scale: float = 1.0 / 255.0  # applied to uint8 pixels before mean/std
    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)
    features: list[str] = field(default_factory=list)  # tabular column names and units
    # local contrast equalisation (OpenCV CLAHE, 4x4 tiles) after the resize, with this clip limit; 0 = off. Evens
    # out hard side light on faces; a model trained with it must be fed with it (``edge.data.equalize``)
    clahe: float = 0.0

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> InputSpec:
        return cls(**d)


@dataclass
class Manifest:
    """Everything a runtime needs to know about one exported artifact."""

    family: str
    format: str
    file: str  # artifact file or folder name, relative to the manifest
    task: str  # classify | embed
    input: InputSpec
    classes: list[str] = field(default_factory=list)
    embedding_size: int | None = None
    threshold: dict[str, Any] | None = None
    trained: bool = False
    source: dict[str, Any] = field(default_factory=dict)
    exporter: dict[str, str] = field(default_factory=dict)
    parity: dict[str, Any] = field(default_factory=dict)
    calibration: dict[str, Any] | None = None
    sha256: str = ""
    size_bytes: int = 0
    io_names: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    # what a live app does to a camera frame before ``input``: {"kind": "face" | "roi" | "center_crop" | "whole", ...}
    prestep: dict[str, Any] = field(default_factory=dict)
    # classifiers: softmax temperature fitted on the validation split by ``edge calibrate`` (None = 1)
    temperature: float | None = None
    schema: int = SCHEMA

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Manifest:
        d = dict(d)
        d["input"] = InputSpec.from_dict(d["input"])
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})


def manifest_path(artifact: Path) -> Path:
    """Where the manifest of ``artifact`` lives."""
    artifact = Path(artifact)
    return artifact.with_name(artifact.name + ".json")


def sha256_of(path: Path) -> str:
    """sha256 of a file, or of a folder's files in name order."""
    path = Path(path)
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        if path.is_dir():
            h.update(f.relative_to(path).as_posix().encode())
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def size_of(path: Path) -> int:
    path = Path(path)
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def write_manifest(artifact: Path, manifest: Manifest) -> Path:
    """Fill in hash and size from the artifact on disk and write the JSON next to it."""
    artifact = Path(artifact)
    manifest.file = artifact.name
    manifest.sha256 = sha256_of(artifact)
    manifest.size_bytes = size_of(artifact)
    out = manifest_path(artifact)
    out.write_text(json.dumps(manifest.to_dict(), indent=2, sort_keys=True) + "\n")
    return out


def resolve_artifact(path: Path | str) -> tuple[Path, Path]:
    """Given an artifact or its manifest, return (artifact, manifest) paths."""
    path = Path(path)
    if path.name.endswith(".json") and not path.is_dir():
        man = path
        artifact = path.with_name(path.name[: -len(".json")])
    else:
        artifact, man = path, manifest_path(path)
    if not artifact.exists():
        raise EdgeError(f"artifact not found: {artifact}")
    if not man.exists():
        raise EdgeError(
            f"no manifest next to {artifact} (expected {man.name}); export it with 'edge export'"
        )
    return artifact, man


def read_manifest(path: Path | str, check_hash: bool = False) -> tuple[Path, Manifest]:
    """Read the manifest of an artifact; optionally check the artifact's sha256."""
    artifact, man = resolve_artifact(path)
    try:
        manifest = Manifest.from_dict(json.loads(man.read_text()))
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise EdgeError(f"manifest {man} is not valid: {exc}") from None
    if check_hash and manifest.sha256 and sha256_of(artifact) != manifest.sha256:
        raise EdgeError(f"{artifact} does not match the sha256 in its manifest (file changed?)")
    return artifact, manifest
