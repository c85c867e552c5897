"""Scores shared by training, ensembles and ``edge eval``: numpy only, so the torch-free runtime can use them."""

from __future__ import annotations

from typing import Any

import numpy as np


def classification_report(y: np.ndarray, pred: np.ndarray, classes: list[str]) -> dict[str, Any]:
    """Accuracy, macro F1, per-class precision / recall / F1 / support and the confusion matrix (rows: truth)."""
    k = len(classes)
    cm = np.zeros((k, k), np.int64)
    for t, p in zip(y, pred):
        cm[t, p] += 1
    per = {}
    for i, c in enumerate(classes):
        tp = cm[i, i]
        prec = tp / cm[:, i].sum() if cm[:, i].sum() else 0.0
        rec = tp / cm[i].sum() if cm[i].sum() else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        per[c] = {"precision": round(float(prec), 4), "recall": round(float(rec), 4), "f1": round(float(f1), 4),
                  "support": int(cm[i].sum())}
    return {"accuracy": round(float((y == pred).mean()), 4),
            "macro_f1": round(float(np.mean([v["f1"] for v in per.values()])), 4),
            "n": int(len(y)), "per_class": per, "confusion": cm.tolist()}


def pair_scores(emb: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Euclidean distance and genuine/impostor flag for every unordered pair (from the Gram matrix in float64: an
    N x N array, not N x N x D, so thousands of pictures fit in memory)."""
    e = np.asarray(emb, np.float64)
    sq = (e * e).sum(1)
    d = np.sqrt(np.maximum(sq[:, None] + sq[None] - 2 * e @ e.T, 0.0))
    iu = np.triu_indices(len(emb), 1)
    return d[iu], (labels[:, None] == labels[None])[iu]


def verification_metrics(dist: np.ndarray, same: np.ndarray, threshold: float | None = None) -> dict[str, Any]:
    """ROC-AUC, EER, and F1 / accuracy / false-accept rate at ``threshold`` (best-F1 threshold if None)."""
    order = np.argsort(dist)
    d, s = dist[order], same[order].astype(np.float64)
    tp = np.cumsum(s)
    fp = np.cumsum(1 - s)
    pos, neg = s.sum(), (1 - s).sum()
    tpr, fpr = tp / max(pos, 1), fp / max(neg, 1)
    auc = float(np.trapezoid(np.concatenate([[0], tpr]), np.concatenate([[0], fpr])))
    i_eer = int(np.argmin(np.abs((1 - tpr) - fpr)))
    eer = float((1 - tpr[i_eer] + fpr[i_eer]) / 2)
    if threshold is None:
        prec = tp / np.maximum(tp + fp, 1)
        f1 = 2 * prec * tpr / np.maximum(prec + tpr, 1e-12)
        threshold = float(d[int(np.argmax(f1))])
    pred = dist <= threshold
    tp_t = float((pred & same).sum())
    fp_t = float((pred & ~same).sum())
    fn_t = float((~pred & same).sum())
    f1_t = 2 * tp_t / max(2 * tp_t + fp_t + fn_t, 1)
    tpr_t, fpr_t = tp_t / max(pos, 1), fp_t / max(neg, 1)
    # F1 as it would be on equally many genuine and impostor pairs (the usual pair test sets; all pairs here
    # are mostly impostors, which makes plain F1 far harsher): a model that calls every pair "same" gets 0.667
    f1_bal = 2 * tpr_t / max(1 + tpr_t + fpr_t, 1e-12)
    return {"roc_auc": round(auc, 4), "eer": round(eer, 4), "threshold": round(float(threshold), 4),
            "f1": round(f1_t, 4), "f1_balanced": round(float(f1_bal), 4),
            "accuracy": round(float((pred == same).mean()), 4),
            "far": round(float(fpr_t), 4), "frr": round(float(fn_t / max(pos, 1)), 4),
            "pairs": int(len(dist)), "genuine_pairs": int(pos)}


def rates_at(dist: np.ndarray, same: np.ndarray, threshold: float) -> tuple[float, float]:
    """(false-accept rate, false-reject rate) of accepting the pairs with ``dist <= threshold``."""
    accept = dist <= threshold
    return float((accept & ~same).sum() / max((~same).sum(), 1)), float((~accept & same).sum() / max(same.sum(), 1))


def operating_points(dist: np.ndarray, same: np.ndarray, fars: tuple[float, ...] = (0.01, 0.001)) -> list[dict]:
    """Distance thresholds to choose from on these pairs: where false accepts and false rejects cross (EER), the best
    F1, and for each of ``fars`` the loosest threshold that accepts at most that share of strangers' pairs (None where
    there are too few of them to tell: fewer than 1 / far). Thresholds are rounded to 4 decimals (up where no other
    distance lies in between, else down), and the rates are those of the rounded threshold, so passing it on (``edge
    attend run --threshold``) does what the row says."""
    same = np.asarray(same, bool)
    cand = np.unique(dist)
    imp, gen = np.sort(dist[~same]), np.sort(dist[same])
    far = np.searchsorted(imp, cand, "right") / max(len(imp), 1)
    tpr = np.searchsorted(gen, cand, "right") / max(len(gen), 1)
    tp, fp = tpr * len(gen), far * len(imp)
    f1 = 2 * tp / np.maximum(tp + fp + len(gen), 1)
    picks = [("equal error rate", float(cand[int(np.argmin(np.abs(1 - tpr - far)))])),
             ("best F1", float(cand[int(np.argmax(f1))]))]
    for f in fars:
        ok = far <= f
        t = float(cand[ok].max()) if ok.any() else float(cand[0]) - 1e-4  # else: nearer than any pair, none pass
        picks.append((f"false accepts <= {f:.1%}", t if len(imp) * f >= 1 else None))
    out = []
    for name, t in picks:
        if t is None:
            out.append({"point": name, "threshold": None, "far": None, "frr": None})
            continue
        above = cand[cand > t]  # the same pairs pass anywhere below the next distance: round up if it stays there
        up = np.ceil(t * 1e4) / 1e4
        t = float(up if not len(above) or up < above[0] else np.floor(t * 1e4) / 1e4)
        fa, fr = rates_at(dist, same, t)
        out.append({"point": name, "threshold": t, "far": round(fa, 4), "frr": round(fr, 4)})
    return out
