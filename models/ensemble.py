"""``edge ensemble``: several trained networks of one family as one model that averages their outputs.

Averaging logits (not probabilities) keeps the output a logit vector, so the runtime's softmax, ``edge
calibrate``'s temperature and int8 export work as for a single network; it equals the normalised geometric mean
of the members' probabilities. ``flip`` also averages over the horizontally mirrored input: for members trained with
mirrored images (the recipes' flip augmentation: faces, tomatoes, and ASL, where the mirror image is the same letter
signed with the other hand); one run with ``flip`` is that network over both views. Members may take different
input sizes: the ensemble takes the largest and resizes (bilinear) for the others inside the graph. It is an
ordinary ``nn.Module`` built from its checkpoint's kwargs, so ``edge export`` / ``verify`` / ``publish``
take it as they are.

Face embedders (``EmbeddingMean``) average their L2-normalised embeddings and normalise the mean: the runs of one
distilled recipe map faces towards the same teacher's vectors, so their spaces agree and the mean stays a face
vector compared by Euclidean distance; its threshold is chosen on the validation people as a training run's is.
"""

from __future__ import annotations

import importlib
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from edge.data import equalize_batch
from edge.errors import EdgeError
from edge.families import get_family
from edge.metrics import classification_report
from edge.models.checkpoint import model_from_payload, read_checkpoint, run_checkpoint, save_checkpoint
from edge.models.train_common import (
    CACHE_DIR,
    Timer,
    cache_images,
    hardware,
)
from edge.plots import plot_confusion, plot_roc


class LogitMean(nn.Module):
    """Mean of the members' logits, over the input and (with ``flip``) its mirror image; ``sizes[i]`` (if set)
    is member i's own input size, to which the input is resized for it."""

    def __init__(self, members: list[nn.Module], flip: bool = False, sizes: list[int | None] | None = None) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)
        self.flip = flip
        self.sizes = list(sizes or [None] * len(members))

    def member_outputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Each member's output on the input (and, with ``flip``, its mirror image after it in the batch)."""
        # one call per member with both views in the batch: calling a member twice would give exporters two
        # copies of its weights (LiteRT int8 does)
        views = torch.cat([x, torch.flip(x, dims=[3])], 0) if self.flip else x
        outs = []
        for m, size in zip(self.members, self.sizes):
            v = views
            if size and size != views.shape[-1]:
                v = F.interpolate(views, size=(size, size), mode="bilinear", align_corners=False)
            outs.append(m(v))
        return outs

    def view_mean(self, outs: list[torch.Tensor], n: int) -> torch.Tensor:
        mean = torch.stack(outs, 0).mean(0)
        return mean.view(2, n, -1).mean(0) if self.flip else mean

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.view_mean(self.member_outputs(x), x.shape[0])


class EmbeddingMean(LogitMean):
    """The normalised mean of the members' L2-normalised embeddings over the input and (with ``flip``) its
    mirror image: cosine between two such vectors grows with every member's (and view's) agreement."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [F.normalize(o, dim=1) for o in self.member_outputs(x)]
        return F.normalize(self.view_mean(outs, x.shape[0]), dim=1)


def _nets(members: list[dict[str, Any]]) -> list[nn.Module]:
    if not members:
        raise EdgeError("an ensemble needs at least one member")
    nets = []
    for m in members:
        module, func = m["builder"].split(":")
        nets.append(getattr(importlib.import_module(module), func)(**m.get("builder_kwargs", {})))
    return nets


def logit_mean_ensemble(members: list[dict[str, Any]], flip: bool = False) -> LogitMean:
    """Builder: ``members`` = [{"builder": "module:function", "builder_kwargs": {...}, "imgsz": N or None}, ...]
    (untrained; the ensemble checkpoint's state dict holds every member's weights)."""
    return LogitMean(_nets(members), flip=flip, sizes=[m.get("imgsz") for m in members])


def embedding_mean_ensemble(members: list[dict[str, Any]], flip: bool = False) -> EmbeddingMean:
    """Builder of face embedder ensembles; ``members`` as for ``logit_mean_ensemble``."""
    return EmbeddingMean(_nets(members), flip=flip, sizes=[m.get("imgsz") for m in members])


def _member(run: Path) -> dict[str, Any]:
    ckpt = run_checkpoint(run)
    payload = read_checkpoint(ckpt)
    if "state_dict" not in payload:
        raise EdgeError(f"{ckpt}: only neural-network classifiers can be ensembled")
    metrics_path = ckpt.parent / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
    return {"path": ckpt, "payload": payload, "metrics": metrics}


def _loaded(builder: Any, members: list[dict[str, Any]], default_builder: str, sizes: list[int], imgsz: int,
            flip: bool) -> tuple[LogitMean, dict[str, Any]]:
    """The ensemble with every member's trained weights, and the builder kwargs its checkpoint keeps."""
    kwargs = {"members": [{"builder": m["payload"].get("builder") or default_builder,
                           "builder_kwargs": m["payload"].get("builder_kwargs", {}),
                           "imgsz": None if size == imgsz else size} for m, size in zip(members, sizes)],
              "flip": flip}
    model = builder(**kwargs)
    for net, m in zip(model.members, members):
        net.load_state_dict(model_from_payload(m["payload"], m["path"]).state_dict())
    return model.eval(), kwargs


def _save_run(out: Path, fam: Any, model: nn.Module, meta: dict[str, Any], metrics: dict[str, Any]) -> None:
    """The ensemble's run folder: ``best.pt`` (export, publish and ``--teacher`` take it) and ``metrics.json``."""
    out.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out / "best.pt", fam, model, meta)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")


def _fit(payload: dict[str, Any]) -> dict[str, Any]:
    """What members must share (the input size may differ)."""
    inp = payload["meta"].get("input", {})
    return {"family": payload["family"], "classes": payload["meta"].get("classes"),
            **{k: inp.get(k) for k in ("color", "layout", "mean", "std", "scale")},
            "clahe": float(inp.get("clahe") or 0.0)}  # runs from before CLAHE have no such field


def ensemble_runs(runs: list[Path], out: Path, flip: bool = False, data: Path | None = None,
                  log: Any = None) -> dict[str, Any]:
    """Combine the best checkpoints of ``runs`` (one family, same classes and input), score the ensemble on the
    val and test splits (with and without the mirror view), save ``best.pt`` + ``metrics.json`` in ``out``."""
    from edge.models.train_image import _predict, beyond_test, hand_masks, load_split

    log = log or (lambda m: print(m, file=sys.stderr, flush=True))
    if len(runs) < (1 if flip else 2):  # one run with flip = that network over both views
        raise EdgeError("an ensemble needs two or more runs (or one with --flip)")
    timer = Timer()
    members = [_member(Path(r)) for r in runs]
    first = members[0]["payload"]
    fam = get_family(first["family"])
    if fam.kind != "image" or fam.task not in ("classify", "embed"):
        raise EdgeError(f"ensembles are for image classifiers and face embedders; '{fam.name}' is a {fam.kind} "
                        f"{fam.task} family")
    ref = _fit(first)
    for m in members[1:]:
        mine = _fit(m["payload"])
        bad = [f"{k} {mine[k]} vs {ref[k]}" for k in ref if mine[k] != ref[k]]
        if bad:
            raise EdgeError(f"{m['path']} does not fit {members[0]['path']}: {'; '.join(bad)}")
    # the same data set and held-out splits (train subsets may differ: --max-per-class draws per seed)
    sources = {tuple((m["metrics"].get("data") or {}).get(k) for k in ("source", "val", "test")) for m in members}
    if len(sources) > 1:
        raise EdgeError(f"the runs were trained and scored on different data: {sorted(map(str, sources))}")
    cfgs = [m["metrics"].get("config") or {} for m in members]
    if flip:  # the mirror view is a picture the member never saw unless it trained on mirrored images
        unmirrored = [str(m["path"].parent) for m, c in zip(members, cfgs)
                      if (c.get("augment") or {}).get("flip") is False]
        if unmirrored:
            raise EdgeError(f"--flip: {', '.join(unmirrored)} trained without mirrored images (e.g. the B4 recipe), "
                            "so the mirror view would be new to it; leave --flip out")
    sizes = [int(m["payload"]["meta"]["input"]["shape"][-1]) for m in members]
    trained_on = first["meta"].get("data")  # the user's folder the runs were trained on (the data hash agrees)
    if fam.task == "embed":
        if data is not None:
            raise EdgeError("face ensembles are scored on their runs' people (ORL's, or the folder they were trained "
                            "on); --data is for classifiers")
        return _embedding_ensemble(members, cfgs, sizes, out, flip, timer, log, trained_on)
    data = data or (Path(trained_on) if trained_on else None)
    # the largest size (the others are resized inside the graph), equalised as the members were trained
    spec = replace(fam.input_spec(max(sizes)), clahe=ref["clahe"])
    split = load_split(fam.name, data, log)
    classes, parts = split.classes, split.parts
    if classes != first["meta"]["classes"]:
        raise EdgeError(f"the data's classes {classes} are not the checkpoints' {first['meta']['classes']}")
    imgsz = spec.shape[-1]
    xs = {k: cache_images(parts[k], spec.color, imgsz, CACHE_DIR, f"{fam.name}-{k}", log) for k in ("val", "test")}
    model, kwargs = _loaded(logit_mean_ensemble, members, fam.builder, sizes, imgsz, flip)
    scores: dict[str, dict[str, Any]] = {}
    for view in ([False, True] if flip else [False]):
        model.flip = view
        for k in ("val", "test"):
            x, y, _ = xs[k]
            scores.setdefault(k, {})[view] = classification_report(y, _predict(model, x, spec, batch=32).argmax(1),
                                                                       classes)
        log(f"ensemble of {len(members)}{' + mirror' if view else ''}: val {scores['val'][view]['accuracy']:.4f}, "
            f"test {scores['test'][view]['accuracy']:.4f}")
    model.flip = flip
    val, test = scores["val"][flip], scores["test"][flip]
    if flip:
        test["without_mirror"] = {"accuracy": scores["test"][False]["accuracy"],
                                  "val_accuracy": scores["val"][False]["accuracy"]}
    # what the members were scored on beyond the data set (other cameras, unseen backgrounds), the ensemble too
    masks = None
    if any(c.get("eval_backgrounds") for c in cfgs):
        masks = hand_masks({"test": parts["test"]}, imgsz, fam.name, xs)["test"]
    test.update(beyond_test(model, *xs["test"][:2], spec, any(c.get("eval_shifts") for c in cfgs), masks, log))
    member_rows = [{"run": str(m["path"].parent), "test_accuracy": m["metrics"].get("test", {}).get("accuracy"),
                    "val_accuracy": m["metrics"].get("val", {}).get("accuracy"),
                    "seed": c.get("seed"), "imgsz": size,
                    "epochs": len(m["metrics"].get("history") or []),
                    "wall_minutes": m["metrics"].get("wall_minutes")} for m, c, size in zip(members, cfgs, sizes)]
    trained = sum(r["wall_minutes"] or 0 for r in member_rows)
    cfg0 = cfgs[0]
    metrics = {
        "family": fam.name, "val": val, "test": test, "history": [], "members": member_rows,
        "wall_minutes": round(trained + timer.minutes, 2),
        "hardware": members[0]["metrics"].get("hardware") or hardware(),
        "config": {"family": fam.name, "imgsz": imgsz, "ensemble": len(members), "flip": flip,
                   "builder": "edge.models.ensemble:logit_mean_ensemble",
                   "member_config": {k: v for k, v in cfg0.items() if k not in ("seed", "augment")},
                   "augment": cfg0.get("augment")},
        "data": {**(members[0]["metrics"].get("data") or {}),
                 "train_hashes": sorted({str((m["metrics"].get("data") or {}).get("hash")) for m in members})},
    }
    meta = {"trained": True, "classes": classes, "input": spec.__dict__, "metrics": {
        "test_accuracy": test["accuracy"], "val_accuracy": val["accuracy"], "test_macro_f1": test["macro_f1"]},
        "note": f"ensemble of {len(members)} runs ({', '.join(r['run'] for r in member_rows)})"
                f"{', with the mirror view' if flip else ''}",
        "builder": "edge.models.ensemble:logit_mean_ensemble", "builder_kwargs": kwargs,
        "data": str(Path(data).resolve()) if data else None}
    _save_run(out, fam, model, meta, metrics)
    plot_confusion(test["confusion"], classes, out / "confusion.png", f"{fam.name} ensemble test confusion")
    log(f"{fam.name} ensemble: test accuracy {test['accuracy']:.4f}, macro F1 {test['macro_f1']:.4f} -> "
        f"{out / 'best.pt'}")
    return metrics


def _embedding_ensemble(members: list[dict[str, Any]], cfgs: list[dict[str, Any]], sizes: list[int], out: Path,
                        flip: bool, timer: Timer, log: Any, trained_on: str | None = None) -> dict[str, Any]:
    """Face runs (identity protocol, one data hash) as one ``EmbeddingMean``: pairs of the val people choose its
    threshold (best F1), the test people's pairs score it, as ``edge train face`` scores a run (on ORL, or on the
    user's folder ``trained_on``)."""
    from edge.data import split_for
    from edge.metrics import verification_metrics
    from edge.models.train_face import _pairs, _score_test

    fam = get_family("face")
    protocols = {c.get("protocol", "identities") for c in cfgs}
    if protocols != {"identities"}:
        raise EdgeError(f"face ensembles take runs of the identity protocol (people never seen in training), not "
                        f"{sorted(protocols)}")
    dims = {int(m["payload"].get("builder_kwargs", {}).get("embedding_size", 128)) for m in members}
    if len(dims) > 1:
        raise EdgeError(f"the runs make embeddings of different sizes ({sorted(dims)}): they cannot be averaged")
    hashes = {(m["metrics"].get("data") or {}).get("hash") for m in members}
    if len(hashes) > 1:
        raise EdgeError(f"the runs were trained on different data (hashes {sorted(map(str, hashes))})")
    first = members[0]["payload"]["meta"]["input"]
    imgsz = max(sizes)
    spec = replace(fam.input_spec(imgsz), clahe=first.get("clahe") or 0.0)
    split = split_for("face", trained_on)
    xs = {k: cache_images(split.parts[k], "gray", imgsz, CACHE_DIR, f"face-{k}", log) for k in ("val", "test")}
    xs = {k: (equalize_batch(x, spec.clahe), y, sk) for k, (x, y, sk) in xs.items()}
    model, kwargs = _loaded(embedding_mean_ensemble, members, fam.builder, sizes, imgsz, flip)
    mean, std = spec.mean[0], spec.std[0]
    scored: dict[bool, Any] = {}
    for view in ([False, True] if flip else [False]):
        model.flip = view
        val_pairs, test_pairs = _pairs(model, xs, "val", mean, std), _pairs(model, xs, "test", mean, std)
        val = verification_metrics(*val_pairs)
        scored[view] = (val, _score_test(test_pairs, val["threshold"]), val_pairs, test_pairs)
        t = scored[view][1]["test"]
        log(f"face ensemble of {len(members)}{' + mirror' if view else ''}: test EER {t['eer']:.4f}, AUC "
            f"{t['roc_auc']:.4f}, F1 {t['f1']:.4f} at distance {val['threshold']:.3f}")
    model.flip = flip
    val, both, val_pairs, test_pairs = scored[flip]
    test = both["test"]
    if flip:
        w = scored[False][1]["test"]
        test["without_mirror"] = {k: w[k] for k in ("eer", "roc_auc", "f1", "threshold")}
    plot_roc({f"test (AUC {test['roc_auc']:.3f})": test_pairs, f"val (AUC {val['roc_auc']:.3f})": val_pairs},
             out / "roc.png", "face verification, people never seen in training (ensemble)")
    member_rows = [{"run": str(m["path"].parent), "seed": c.get("seed"), "imgsz": size,
                    "clahe": c.get("clahe", 0.0), "epochs": len(m["metrics"].get("history") or []),
                    **{f"test_{k}": (m["metrics"].get("test") or {}).get(k) for k in ("eer", "roc_auc", "f1")},
                    "wall_minutes": m["metrics"].get("wall_minutes")} for m, c, size in zip(members, cfgs, sizes)]
    metrics = {
        "family": "face", "protocol": "identities", "val": val, "test": test,
        "test_best_threshold": both["test_best_threshold"], "history": [], "members": member_rows,
        "wall_minutes": round(sum(r["wall_minutes"] or 0 for r in member_rows) + timer.minutes, 2),
        "hardware": members[0]["metrics"].get("hardware") or hardware(),
        "config": {"family": "face", "imgsz": imgsz, "ensemble": len(members), "flip": flip,
                   "builder": "edge.models.ensemble:embedding_mean_ensemble",
                   "member_config": {k: v for k, v in cfgs[0].items() if k not in ("seed", "augment")},
                   "augment": cfgs[0].get("augment")},
        "data": {**(members[0]["metrics"].get("data") or {})},
    }
    meta = {"trained": True, "classes": [], "input": spec.__dict__,
            "threshold": {"distance": val["threshold"], "metric": "euclidean", "chosen_on": "val identities (best F1)"},
            "metrics": {"test_f1": test["f1"], "test_eer": test["eer"], "test_roc_auc": test["roc_auc"]},
            "note": f"ensemble of {len(members)} face runs ({', '.join(r['run'] for r in member_rows)})"
                    f"{', with the mirror view' if flip else ''}",
            "builder": "edge.models.ensemble:embedding_mean_ensemble", "builder_kwargs": kwargs, "data": trained_on}
    _save_run(out, fam, model, meta, metrics)
    log(f"face ensemble: test EER {test['eer']:.4f}, AUC {test['roc_auc']:.4f}, F1 {test['f1']:.4f} -> "
        f"{out / 'best.pt'}")
    return metrics
