"""Model cards and the zoo: what a training run really produced, next to the paper's figure.

``edge publish <family>`` measures accuracy after export for each artifact (through ``edge.runtime``
on the test split), writes ``models/cards/<family>.md`` and copies artifacts of at most 8 MB, with
their manifests, to ``models/zoo/<family>/``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from edge import runtime
from edge.bench.accuracy import evaluate
from edge.errors import EdgeError
from edge.families import get_family
from edge.manifest import read_manifest

CARDS = Path(__file__).with_name("cards")
ZOO = Path(__file__).with_name("zoo")
MAX_ZOO_BYTES = 8 * 1024 * 1024


def after_export(artifacts: Path, family: str) -> list[dict[str, Any]]:
    rows = []
    for man_path in sorted((artifacts / family).glob("*.json")):
        artifact, man = read_manifest(man_path)
        if man.format == "torch":
            continue
        row = {"format": man.format, "artifact": artifact, "size_mb": round(man.size_bytes / 1e6, 2),
               "parity": man.parity, "trained": man.trained, "source": man.source, "prestep": man.prestep}
        try:
            row["accuracy"] = evaluate(runtime.load(artifact))
        except EdgeError as exc:
            row["error"] = str(exc)
        rows.append(row)
    return rows


def _table(header: list[str], rows: list[list[Any]]) -> str:
    return "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
                     + ["| " + " | ".join(str(c) for c in r) + " |" for r in rows])


def _trail_section(m: dict[str, Any], paper: str) -> list[str]:
    rows = []
    for label in ("rule", "outcome"):
        for split in ("chronological", "random_8_2"):
            s = m[label].get(split)
            if not s:
                rows.append([label, split.replace("_", " "), "-", "-", "-", "-",
                             m[label].get(f"{split}_skipped", m[label].get("skipped", "not scored"))])
                continue
            rows.append([label, split.replace("_", " "), s["accuracy"], s["f1_berbahaya"], s["n_test"],
                         s["positives_test"], s["confusion"]])
    ra = m.get("range_agreement")
    recipe = (m.get("recipes") or {}).get(m["deploy_label"], {})
    lines = [f"Paper: {paper}.", "",
             _table(["label", "split", "accuracy", "F1 (Berbahaya)", "test rows", "Berbahaya rows", "confusion"],
                    rows),
             "", f"Rows: {m['rows_total']} read ({m.get('read_as', 'comma-separated')}), {m['rows_valid']} valid; "
             f"dropped: {m['dropped']}; without rainfall (rule label only): {m.get('rows_without_rainfall', 0)}.",
             f"Label definitions and their sources: `models/configs/{m['label_config']}`. The deployed tree "
             f"(`{m['deploy_label']}` label, {m['deploy_tree']['nodes']} nodes, depth {m['deploy_tree']['depth']}) "
             f"is fitted on {m['deploy_tree']['trained_on']}"
             + ("; the split trees above are fitted the same way on their training rows." if recipe.get(
                 "range_readings") else "."),
             "The rule label is a function of the three features, so a tree learns it almost perfectly (as the "
             "paper's 99.27 % suggests its label was); the outcome label (what the day brought) is the honest "
             "forecasting task, and daily means predict it poorly.", ""]
    if ra:
        rng = ra["range"]
        lines += ["### Over everything the station can read", "",
                  f"Semarang's days cover a sliver of what a station on a trail reads. On {ra['readings']:,} readings "
                  f"drawn at random over {rng['temperature_c'][0]}..{rng['temperature_c'][1]} C, "
                  f"{rng['humidity_pct'][0]}..{rng['humidity_pct'][1]} % and {rng['wind_kmh'][0]}.."
                  f"{rng['wind_kmh'][1]} km/h (a draw apart from the one it was taught on), the deployed tree says "
                  f"what the rule says on **{ra['deployed']:.2%}** of them; the same tree fitted on the data rows "
                  f"alone: {ra['data_rows_only']:.2%}.", ""]
    return lines


def _shifted_section(t: dict) -> list[str]:
    """The test set moved toward the outside world: other backgrounds, other cameras, other hand positions (when
    measured)."""
    rows = []
    if "unseen_backgrounds" in t:
        u = t["unseen_backgrounds"]
        rows.append([f"test hands on backgrounds from sources training never saw ({', '.join(u['sources'])})",
                     f"{u['accuracy']:.4f}"])
    for name, acc in t.get("camera_shifts", {}).items():
        rows.append([f"test photos, {name}", f"{acc:.4f}"])
    for name, acc in t.get("hand_positions", {}).items():
        rows.append([f"test hands {name}", f"{acc:.4f}"])
    if not rows:
        return []
    return ["### Beyond this data set (simulated from the test split)", "",
            _table(["condition", "accuracy"], [["test split as it is", f"{t['accuracy']:.4f}"], *rows]), ""]


def write_card(family: str, run: Path, artifacts: Path, command: str, zoo_formats: list[str]) -> Path:
    fam = get_family(family)
    metrics_path = run / "metrics.json"
    if not metrics_path.exists():
        raise EdgeError(f"no metrics.json in {run}: train first ('edge train {family}')")
    m = json.loads(metrics_path.read_text())
    exported = after_export(artifacts, family)
    if exported and not all(r["trained"] for r in exported):
        raise EdgeError(f"artifacts in {artifacts / family} are not from a trained checkpoint: re-export first")
    stale = stale_exports(exported, m, fam.prestep)
    if stale:
        raise EdgeError(f"artifacts in {artifacts / family} do not match {run}: {'; '.join(stale)}. Re-export first: "
                        f"edge export {run / 'best.pt'}")
    CARDS.mkdir(parents=True, exist_ok=True)
    cfg0 = m.get("config") or {}
    members = m.get("members")
    if members:  # edge ensemble: the members' recipe, several seeds
        cfg0 = {**cfg0.get("member_config", {}), "augment": cfg0.get("augment"), "ensemble": cfg0.get("ensemble"),
                "flip": cfg0.get("flip"), "ensemble_imgsz": cfg0.get("imgsz")}
    arch = f"`{cfg0.get('builder') or fam.builder}` {json.dumps(cfg0.get('builder_kwargs') or fam.builder_kwargs)}"
    if members:
        nets = f"{len(members)} networks, each {arch}" if len(members) > 1 else f"one network, {arch}"
        what = "unit embeddings (normalised again)" if fam.task == "embed" else "logits"
        arch = (f"the mean of the {what} of {nets}"
                + (", over the image and its mirror image" if cfg0.get("flip") else "") + " (`edge ensemble`)")
    lines = [f"# {fam.title}", "", f"Family `{family}`. Generated by `edge publish {family}` from `{metrics_path}`.",
             "", f"Architecture: {arch}", ""]
    if cfg0.get("builder") and cfg0["builder"] != fam.builder:
        lines += [f"This run trains a variant, not the paper's `{fam.builder}`: see the notes below.", ""]
    notes = Path(__file__).parent / "configs" / "card_notes" / f"{family}.md"
    if notes.exists():
        lines += ["## Notes", "", notes.read_text().strip(), ""]
    lines += ["## Result next to the paper", ""]
    if family == "trail":
        lines += _trail_section(m, fam.paper)
    elif fam.task == "embed":
        t = m["test"]
        lines += [_table(["", "paper", "ours (people never seen in training)"], [
            ["verification F1", fam.paper, f"{t['f1']:.4f} at distance <= {t['threshold']:.3f}"],
            ["EER", "-", f"{t['eer']:.4f}"], ["ROC-AUC", "-", f"{t['roc_auc']:.4f}"],
            ["accuracy over pairs", "-", f"{t['accuracy']:.4f} (FAR {t['far']:.4f}, FRR {t['frr']:.4f})"],
        ]), "", f"Pairs: {t['pairs']} ({t['genuine_pairs']} genuine). Threshold chosen on the validation people "
            "(best F1) and applied unchanged to the test people.", ""]
        if members:
            rows = [[r["run"], r.get("seed"), r.get("clahe"), r.get("epochs"), r["test_eer"], r["test_roc_auc"],
                     r["test_f1"], r["wall_minutes"]] for r in members]
            if "without_mirror" in t:
                wm = t["without_mirror"]
                rows.append(["all members, without the mirror view", "", "", "", wm["eer"], wm["roc_auc"], wm["f1"],
                             ""])
            rows.append(["**this ensemble**", "", "", "", t["eer"], t["roc_auc"], t["f1"], m["wall_minutes"]])
            lines += ["### Members", "", "Each member's F1 is at its own validation threshold.", "",
                      _table(["run", "seed", "CLAHE", "epochs", "test EER", "ROC-AUC", "F1", "minutes"], rows), ""]
        roc = run / "roc.png"
        if roc.exists():
            shutil.copy(roc, CARDS / f"{family}_roc.png")
            lines += [f"![ROC]({family}_roc.png)", ""]
    else:
        t = m["test"]
        lines += [_table(["", "paper", "ours"], [
            ["accuracy", fam.paper, f"{t['accuracy']:.4f} (test), {m['val']['accuracy']:.4f} (val)"],
            ["macro F1", "-", f"{t['macro_f1']:.4f}"]]), "",
            "### Per class (test)", "",
            _table(["class", "precision", "recall", "F1", "support"],
                   [[c, v["precision"], v["recall"], v["f1"], v["support"]] for c, v in t["per_class"].items()]), ""]
        lines += _shifted_section(t)
        if members:
            rows = [[r["run"], r.get("imgsz"), r.get("epochs"), r["seed"], f"{r['val_accuracy']:.4f}",
                     f"{r['test_accuracy']:.4f}", r["wall_minutes"]] for r in members]
            if "without_mirror" in t:
                wm = t["without_mirror"]
                rows.append(["all members, without the mirror view", "", "", "", f"{wm['val_accuracy']:.4f}",
                             f"{wm['accuracy']:.4f}", ""])
            rows.append(["**this ensemble**", cfg0["ensemble_imgsz"], "", "", f"{m['val']['accuracy']:.4f}",
                         f"{t['accuracy']:.4f}", m["wall_minutes"]])
            lines += ["### Members", "", "Each member's own input size; the ensemble resizes its input for the "
                      "smaller ones inside the graph.", "",
                      _table(["run", "px", "epochs", "seed", "val", "test", "minutes"], rows), ""]
        conf = run / "confusion.png"
        if conf.exists():
            shutil.copy(conf, CARDS / f"{family}_confusion.png")
            lines += [f"![confusion matrix]({family}_confusion.png)", ""]
    lines += ["## After export (the same test split, through `edge.runtime`)", ""]
    rows = []
    for r in exported:
        if family == "trail":
            p = r["parity"]
            mp = p.get("micropython", {}).get("max_abs_diff")
            rows.append([r["format"], r["size_mb"], f"max abs diff vs scikit-learn {p['max_abs_diff']}"
                         + ("" if mp is None else f", MicroPython port {mp}"), p.get("inputs", ""),
                         "pass" if p.get("within_tolerance") else "FAILS"])
            continue
        acc = r.get("accuracy")
        val = f"{acc['metric']} {acc['value']:.4f}" if acc else r.get("error", "n/a")
        p = r["parity"]
        par = (f"top-1 agreement {p['top1_agreement']:.3f}" if "top1_agreement" in p
               else f"cosine min {p.get('cosine_min', 0):.4f}")
        gate = "pass" if p.get("within_tolerance") else "FAILS the export gate"
        if "accuracy_drop" in p:
            gate += f" (drop {p['accuracy_drop'] * 100:.2f} points; limit 1)"
        rows.append([r["format"], r["size_mb"], val, par, gate])
    header = ["format", "MB", "metric", "parity vs the reference", "gate"]
    lines += [_table(header, rows) if rows else "(not exported yet)", ""]
    cfg = cfg0 if members else m.get("config", {"max_depth": m.get("max_depth")})
    lines += ["## How it was made", "",
              f"- Command: `{command}`",
              f"- Hardware: {m.get('hardware')}; wall time {m.get('wall_minutes')} min",
              f"- Data: {json.dumps(m.get('data'))}",
              f"- Configuration: `{json.dumps({k: v for k, v in cfg.items() if k != 'augment'})}`",
              *([] if family == "trail" else [f"- Augmentation: `{json.dumps(cfg.get('augment'))}`",
              (f"- Members: the {len(members)} runs in the table above (configuration: the first member's; seeds "
               f"{', '.join(str(r['seed']) for r in members)}); wall time is their training plus the scoring"
               if members else
               f"- Epochs run: {len(m.get('history', []))} ("
               + ("the last one kept" if cfg.get("keep") == "last" else "early stopping on the validation split")
               + ")")]), ""]
    card = CARDS / f"{family}.md"
    card.write_text("\n".join(lines))
    fill_zoo(exported, zoo_formats, ZOO / family)
    return card


def stale_exports(exported: list[dict[str, Any]], metrics: dict[str, Any], prestep: dict[str, Any]) -> list[str]:
    """Why exported artifacts are not this run's: another checkpoint's test accuracy in their manifest, or a
    manifest written before the family's camera prestep was (publishing would put either in the zoo)."""
    want = (metrics.get("test") or {}).get("accuracy")
    out = []
    for r in exported:
        have = (r.get("source") or {}).get("metrics", {}).get("test_accuracy")
        if want is not None and have is not None and abs(have - want) > 1e-9:
            out.append(f"{r['artifact'].name} comes from a checkpoint with test accuracy {have}, the run has {want}")
        if r.get("prestep") != prestep:
            out.append(f"{r['artifact'].name} has prestep {r.get('prestep')}, the family {prestep}")
    return out


def fill_zoo(exported: list[dict[str, Any]], zoo_formats: list[str], dest: Path) -> list[Path]:
    """Copy the artifacts in ``zoo_formats`` that passed their gate and fit the budget (with manifests) to
    ``dest``, replacing what was there: an artifact left from an earlier model would be loaded before the new one.
    With none that qualifies the zoo is left as it is."""
    chosen = []
    for r in exported:
        if r["format"] in zoo_formats and r["parity"].get("within_tolerance"):
            art: Path = r["artifact"]
            size = sum(p.stat().st_size for p in art.rglob("*")) if art.is_dir() else art.stat().st_size
            if size <= MAX_ZOO_BYTES:
                chosen.append(art)
    if not chosen:
        return []
    if dest.exists():
        for old in dest.iterdir():
            shutil.rmtree(old) if old.is_dir() else old.unlink()
    dest.mkdir(parents=True, exist_ok=True)
    for art in chosen:
        if art.is_dir():
            shutil.copytree(art, dest / art.name)
        else:
            shutil.copy(art, dest / art.name)
        shutil.copy(art.with_name(art.name + ".json"), dest / (art.name + ".json"))
    return [dest / a.name for a in chosen]
