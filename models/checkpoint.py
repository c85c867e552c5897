"""Checkpoints that carry their metadata: family, builder kwargs, classes, input spec, metrics."""

from __future__ import annotations

import importlib
import pickle
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edge.errors import EdgeError
from edge.families import Family, get_family


def build(family: Family, builder: str | None = None, **overrides: Any) -> Any:
    """Call the family's builder (or ``builder``, "module:function") with its kwargs plus overrides."""
    module, func = (builder or family.builder).split(":")
    kwargs = overrides if builder else {**family.builder_kwargs, **overrides}
    return getattr(importlib.import_module(module), func)(**kwargs)


def save_checkpoint(path: Path, family: Family, model: Any, meta: dict[str, Any]) -> Path:
    """Save weights (torch) or the fitted estimator (tree) with metadata, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"family": family.name, "meta": meta}
    tmp = path.with_suffix(path.suffix + ".tmp")
    if isinstance(model, nn.Module):
        payload["state_dict"] = model.state_dict()
        payload["builder_kwargs"] = meta.get("builder_kwargs", {})
        payload["builder"] = meta.get("builder")
        torch.save(payload, tmp)
    else:
        payload["estimator"] = model
        with open(tmp, "wb") as fh:
            pickle.dump(payload, fh)
    tmp.replace(path)
    return path


def run_checkpoint(run: Path) -> Path:
    """A run folder's best checkpoint (``best.pt``, or a tree's ``best.pkl``); a file path as it is."""
    run = Path(run)
    if not run.is_dir():
        return run
    return next((run / n for n in ("best.pt", "best.pkl") if (run / n).exists()), run / "best.pt")


def read_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint's payload with a clear error when it is missing or corrupt."""
    path = Path(path)
    if not path.exists():
        raise EdgeError(f"checkpoint not found: {path}")
    try:
        if path.suffix == ".pkl":
            with open(path, "rb") as fh:
                payload = pickle.load(fh)  # noqa: S301 - our own checkpoint format
        else:
            payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise EdgeError(f"checkpoint {path} is corrupt or not an edge checkpoint: {str(exc)[:200]}") from None
    if not isinstance(payload, dict) or "family" not in payload:
        raise EdgeError(f"{path} is not an edge checkpoint (no 'family' key)")
    get_family(payload["family"])
    return payload


def load_model(path: Path) -> Any:
    """Rebuild the model of a checkpoint and load its weights."""
    return model_from_payload(read_checkpoint(path), path)


def model_from_payload(payload: dict[str, Any], path: Path) -> Any:
    """The model of an already-read checkpoint payload (``path`` only names it in errors)."""
    family = get_family(payload["family"])
    if "estimator" in payload:
        return payload["estimator"]
    model = build(family, builder=payload.get("builder"), **payload.get("builder_kwargs", {}))
    try:
        model.load_state_dict(payload["state_dict"])
    except (RuntimeError, KeyError) as exc:
        raise EdgeError(f"weights in {path} do not fit the {family.name} model: {str(exc)[:200]}") from None
    return model.eval()
