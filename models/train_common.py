"""What every trainer shares: cached uint8 tensors, seeding, metrics, run folders (plots: ``edge.plots``)."""

from __future__ import annotations

import hashlib
import json
import platform
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edge.data import Sample, read_image
from edge.errors import EdgeError, InputError


def seed_everything(seed: int, deterministic: bool = True) -> torch.Generator:
    """Seed every generator and, with ``deterministic`` (CPU runs), keep torch to deterministic kernels: a seed then
    gives the same run on the same machine and thread count (on 2 CPU threads the face trainer's index backward
    summed in varying order: val AUC 0.7596 / 0.7604 / 0.7615 for one seed; no cost measured). GPU runs keep the
    fast kernels (not measured there). Ops without a deterministic kernel warn instead of failing."""
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def config_json(cfg: Any) -> dict[str, Any]:
    """A trainer's dataclass config as plain JSON values (what metrics.json and last.pt record)."""
    from dataclasses import asdict

    return json.loads(json.dumps({**asdict(cfg), "augment": asdict(cfg.augment)}))


def refuse_other_settings(last: Path, saved: dict[str, Any] | None, cfg: Any, may_change: tuple[str, ...]) -> None:
    """--resume goes on only with the settings the run was trained with, bar ``may_change`` (how long and where it
    runs); ``saved`` is None for a last.pt older than this check."""
    if saved is None:
        return
    diff = [f"{k} {saved.get(k)!r} -> {v!r}" for k, v in config_json(cfg).items()
            if k not in may_change and saved.get(k) != v]
    if diff:
        raise EdgeError(f"--resume: {last} was trained with other settings ({'; '.join(diff)}); resume with the "
                        "same ones, or train into another --out")


def save_last(state: dict[str, Any], last: Path) -> None:
    """Write last.pt whole or not at all (a Ctrl-C or a full disk mid-write keeps the previous epoch's file)."""
    tmp = last.with_name(last.name + ".partial")
    torch.save(state, tmp)
    tmp.replace(last)


def load_last(last: Path) -> dict[str, Any]:
    """An interrupted run's last.pt, or a clear error when it cannot be read."""
    try:
        st = torch.load(last, map_location="cpu", weights_only=False)
    except Exception as exc:  # truncated, not a torch file, ...
        raise EdgeError(f"--resume: {last} cannot be read ({str(exc)[:120]}); delete it to start over") from None
    if not isinstance(st, dict) or "model" not in st or "epoch" not in st:
        raise EdgeError(f"--resume: {last} is not a run's last.pt; delete it to start over")
    return st


def random_state() -> dict[str, Any]:
    """torch's global random streams (dropout's draws), for last.pt."""
    st: dict[str, Any] = {"torch_rng": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        st["cuda_rng"] = torch.cuda.get_rng_state_all()
    return st


def restore_random_state(st: dict[str, Any]) -> None:
    """Put back what ``random_state`` kept (a last.pt from before it kept them is left as is)."""
    if "torch_rng" in st:
        torch.set_rng_state(st["torch_rng"])
    if "cuda_rng" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda_rng"])


# decoded images and hand masks, shared by every run (keyed by file list, colour and size)
CACHE_DIR = Path("runs") / "cache"


def cache_images(samples: list[Sample], color: str, size: int, cache_dir: Path, tag: str,
                 log: Any = print) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """Decode once into uint8 (N, C, size, size); unreadable files are skipped and counted."""
    import cv2

    key = hashlib.sha256(
        "\n".join(f"{s.path}:{s.label}" for s in samples).encode() + f"{color}{size}".encode()
    ).hexdigest()[:16]
    path = cache_dir / f"{tag}-{color}-{size}-{key}.npz"
    if path.exists():
        z = np.load(path)
        return z["x"], z["y"], json.loads(str(z["skipped"]))
    ch = 1 if color == "gray" else 3
    x = np.empty((len(samples), ch, size, size), np.uint8)
    y = np.empty(len(samples), np.int64)
    n, skipped = 0, {}
    for s in samples:
        try:
            img = read_image(s.path, color)
        except InputError as exc:
            skipped[str(exc)[:60]] = skipped.get(str(exc)[:60], 0) + 1
            continue
        img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA if img.shape[0] > size else cv2.INTER_LINEAR)
        x[n] = img[None] if ch == 1 else img.transpose(2, 0, 1)
        y[n] = s.label
        n += 1
    if skipped:
        log(f"{tag}: skipped {sum(skipped.values())} unreadable images: {skipped}")
    if n == 0:
        raise EdgeError(f"{tag}: none of the {len(samples)} images could be read")
    x, y = x[:n], y[:n]
    cache_dir.mkdir(parents=True, exist_ok=True)
    np.savez(path, x=x, y=y, skipped=json.dumps(skipped))
    return x, y, skipped


def data_hash(samples: list[Sample]) -> str:
    h = hashlib.sha256()
    for s in samples:
        h.update(f"{s.path.name}:{s.label};".encode())
    return h.hexdigest()[:16]


def hardware(device: str = "cpu") -> str:
    """What a run trained on: the GPU when it used one, else the CPU."""
    from edge.bench.fingerprint import cpu_model

    dev = torch.cuda.get_device_name(0) if device == "cuda" and torch.cuda.is_available() else ""
    return f"{dev or cpu_model()} ({torch.get_num_threads()} threads), torch {torch.__version__}, {platform.machine()}"


class Timer:
    def __init__(self) -> None:
        self.t0 = time.time()

    @property
    def minutes(self) -> float:
        return round((time.time() - self.t0) / 60, 2)
