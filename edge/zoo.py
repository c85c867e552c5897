"""The model zoo committed with the repository (``models/zoo``, installed as ``edge.models/zoo``)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from edge.errors import EdgeError

# the artifact a live app picks when given only a family name, best first
PREFERENCE = (".int8.onnx", ".onnx", ".int8.tflite", ".tflite", ".py")  # .py: the trail tree (m2cgen Python)


def package_dir(module: str) -> Path | None:
    """The folder of an installed package, found without importing it (its own code may need what we lack)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def zoo_dir() -> Path:
    root = package_dir("edge.models")
    if root is None:
        raise EdgeError("edge.models is not installed (pip install -e .)")
    return root / "zoo"


def zoo_models() -> dict[str, Path]:
    """family name -> its preferred artifact in the zoo."""
    out: dict[str, Path] = {}
    root = zoo_dir()
    for fam_dir in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
        for suffix in PREFERENCE:
            hit = fam_dir / f"{fam_dir.name}{suffix}"
            if hit.exists() and hit.with_name(hit.name + ".json").exists():
                out[fam_dir.name] = hit
                break
    return out


def resolve_model(name: str) -> Path:
    """A zoo family name (``fer``) or a path to an artifact / its manifest."""
    path = Path(name)
    if path.exists():
        return path
    models = zoo_models()
    if name in models:
        return models[name]
    raise EdgeError(f"no model '{name}': not a file, and the zoo has {', '.join(models) or 'nothing'}")
