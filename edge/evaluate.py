"""``edge eval``: a deployed model on your own labelled pictures (or, for the trail tree, another BMKG station's
daily CSV), through the torch-free runtime.

The data is a folder with one subfolder per class (for the face embedder, one per person). Each picture is framed as
the apps frame an upload (``Prestep.for_picture``): FER and the face embedder find the face (the whole picture where
none is found, counted); tomato and ASL take the picture as it is (their centre crop and guide box are for the live
camera); ``as_is`` skips the face finding too.
Folder names match the model's classes regardless of case; a map renames the others (``joy=happy``). Unreadable
pictures are skipped and counted. Classifiers get accuracy, macro F1 (over the classes the folder has), a per-class
table and the confusion matrix; the face embedder gets every pair of pictures, same person or not, judged at the
manifest's distance threshold (accuracy, F1, false accepts and rejects), with EER, ROC-AUC and the thresholds
these pairs call for (``edge.metrics.operating_points``). With matplotlib the report gets its picture too.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from edge.data import list_image_folder, read_image, to_tensor
from edge.errors import EdgeError, InputError
from edge.metrics import classification_report, operating_points, pair_scores, verification_metrics

BATCH = 64
MISTAKES = 50  # the wrong pictures listed in a report, most confident first
FACE_FRAMING = "cropped to the face found in each (as `edge serve` does with an upload)"
# the manifest's figures on the model's own test split, printed beside the folder's
CARD_KEYS = ("test_accuracy", "test_macro_f1", "test_f1", "test_eer", "test_roc_auc")


def parse_class_map(text: str | None) -> dict[str, str]:
    """'joy=happy,anger=angry' -> {'joy': 'happy', 'anger': 'angry'} (folder name -> model class, lower case)."""
    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        folder, sep, cls = part.partition("=")
        if not sep or not folder.strip() or not cls.strip():
            raise EdgeError(f"--map wants folder=class pairs separated by commas, got {part!r}")
        out[folder.strip().lower()] = cls.strip().lower()
    return out


def match_classes(folders: list[str], classes: list[str], mapping: dict[str, str],
                  skip_unknown: bool = False) -> list[tuple[int, str]]:
    """The model's class index of each folder and how it matched (``edge.class_names.match_class``: case, spaces,
    '-', '_' and other data sets' names); folders that name no class are refused, all of them at once, or with
    ``skip_unknown`` get (-1, '')."""
    from edge.class_names import match_class

    out = [match_class(f, classes, mapping) for f in folders]
    unknown = [f for f, (i, _) in zip(folders, out) if i is None]
    if unknown and not skip_unknown:
        raise EdgeError(f"class folders {', '.join(unknown)} name none of the model's classes "
                        f"({', '.join(classes)}); rename them or map them, e.g. --map {unknown[0]}={classes[0]}, "
                        "or leave them out with --skip-unknown")
    return [(-1, "") if i is None else (i, how) for i, how in out]


def labelled_pictures(data: Path) -> tuple[list[str], list[Any], dict[str, int], str]:
    """(label names, samples, skipped, layout): one subfolder per label, or a flat folder whose pictures are
    labelled by their file names (``A_test.jpg``: the Kaggle ASL test layout)."""
    from edge.class_names import label_from_file_name
    from edge.data import IMAGE_SUFFIXES, Sample

    if not data.is_dir():
        raise EdgeError(f"data folder not found: {data}")
    if any(d.is_dir() and not d.name.startswith(".") for d in data.iterdir()):
        folders, samples, skipped = list_image_folder(data)
        return folders, samples, skipped, "one folder per class"
    files = sorted(p for p in data.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise EdgeError(f"{data} has neither class subfolders nor pictures (expected {data}/<class>/<picture> or "
                        f"{data}/<class>_<n>.jpg)")
    names = [label_from_file_name(f.stem) for f in files]
    nameless = [f.name for f, n in zip(files, names) if n is None]
    if nameless:
        raise EdgeError(f"{data}: a flat folder is labelled by its file names, and {len(nameless)} name no label "
                        f"(e.g. {nameless[0]}); sort the pictures into one subfolder per class")
    labels = sorted(set(n for n in names if n))
    samples = [Sample(f, labels.index(n), f.stem) for f, n in zip(files, names) if n]
    return labels, samples, {}, "flat folder, each picture's class from its file name"


def _class_scores(y: np.ndarray, pred: np.ndarray, classes: list[str]) -> dict[str, Any]:
    """``classification_report`` with macro F1 over the classes the data has (a class with no rows or pictures
    would count as F1 0) and the list of those classes."""
    rep = classification_report(y, pred, classes)
    present = [c for c in classes if rep["per_class"][c]["support"]]
    rep["macro_f1"] = round(float(np.mean([rep["per_class"][c]["f1"] for c in present])), 4)
    return {"classes": classes, "classes_present": present, **rep}


def evaluate(artifact: Path | str, data: Path | str, mapping: dict[str, str] | None = None, as_is: bool = False,
             label: str | None = None, threads: int = 1, progress: bool = True,
             png: Path | None = None, skip_unknown: bool = False) -> dict[str, Any]:
    """Score a deployed model on the user's data: a labelled folder of pictures, or for the trail tree a BMKG daily
    CSV (another station's, say) with ``label`` 'rule' or 'outcome' (default: the one it was trained on). ``png``:
    draw the confusion matrix (the face embedder: its ROC curve) there, where matplotlib is installed."""
    from edge.runtime import load

    data = Path(data)
    model = load(artifact, threads=threads)
    pairs = None
    if model.manifest.input.layout == "NF":
        report = _weather_rows(model, str(artifact), data, label)
    elif label is not None:
        raise EdgeError("--label is for the trail tree (rule or outcome)")
    else:
        report, pairs = _pictures(model, str(artifact), data, mapping, as_is, progress, skip_unknown)
    if png is not None:
        report["png"] = _draw(report, pairs, Path(png))
    return report


def _draw(report: dict[str, Any], pairs: tuple[np.ndarray, np.ndarray] | None, png: Path) -> str | None:
    """The report's picture: the ROC curve with the thresholds marked, or the confusion matrix. None without
    matplotlib."""
    from edge.plots import plot_confusion, plot_roc

    title = f"{Path(report['artifact']).name} on {Path(report['data']).name}"
    if pairs is not None:
        marks = {f"{p['point']} ({p['threshold']})": (p["far"], p["frr"]) for p in report["operating_points"]
                 if p["threshold"] is not None}
        drawn = plot_roc({f"AUC {report['roc_auc']:.3f}": pairs}, png, title, marks)
    else:  # every class on both axes: a picture may be taken for a class the folder does not have
        drawn = plot_confusion(report["confusion"], report["classes"], png, title)
    return str(drawn) if drawn else None


def _weather_rows(model: Any, artifact: str, data: Path, label: str | None) -> dict[str, Any]:
    """The trail tree on a BMKG CSV: rows validated as in training (dropped ones counted), both labels built."""
    from edge.weather import load_weather

    man = model.manifest
    if data.is_dir():
        raise EdgeError(f"{data} is a folder: the trail tree is scored on a BMKG daily table (.csv or .xlsx with "
                        "date or Tanggal, Tavg, RH_avg, ff_x, and RR, Tn, Tx where measured)")
    label = label or str(man.metrics.get("deploy_label", "rule"))
    if label not in ("rule", "outcome"):
        raise EdgeError(f"--label is 'rule' or 'outcome', got {label!r}")
    table = load_weather(data)
    X, y, _ = table.labelled(label)
    if not len(y):
        raise EdgeError(f"{data}: no day has its rainfall (rr), so the outcome label cannot be scored; "
                        "try --label rule")
    rep = _class_scores(y, model.predict(X.astype(np.float32)).argmax(1), man.classes)
    # the card's figure for this label is the tree trained on it: only comparable when that is this tree
    same = label == man.metrics.get("deploy_label")
    chrono = ((man.metrics.get(label) or {}).get("chronological") or {}) if same else {}
    return {"artifact": artifact, "data": str(data), "family": man.family, "task": man.task, "label": label,
            "trained_on": man.metrics.get("deploy_label"), "rows": table.total_rows, "valid_rows": int(len(table.X)),
            "dropped": table.dropped, "positive_rate": round(float(y.mean()), 4), "read_as": table.layout,
            "station": table.station, "scored_rows": int(len(y)),
            "without_rainfall": table.no_outcome if label == "outcome" else 0,
            "card": {f"{label} label, trained to {chrono.get('train_years')}, tested on {chrono.get('test_year')}":
                     chrono.get("accuracy")} if chrono else {}, **rep}


def _pictures(model: Any, artifact: str, data: Path, mapping: dict[str, str] | None, as_is: bool, progress: bool,
              skip_unknown: bool = False) -> tuple[dict[str, Any], tuple[np.ndarray, np.ndarray] | None]:
    """A classifier or the face embedder on a labelled folder of pictures: the report, and for the embedder every
    pair's (distance, same person) for its ROC curve."""
    from edge.calibrate import softmax_t
    from edge.prestep import Prestep, prestep_spec

    man = model.manifest
    thr = (man.threshold or {}).get("distance")
    if man.task != "classify" and thr is None:
        raise EdgeError(f"{Path(artifact).name} has no distance threshold in its manifest")
    parts = sorted(d.name for d in data.iterdir() if d.is_dir()) if data.is_dir() else []
    if parts and set(parts) <= {"train", "val", "test"}:  # a training folder, already split
        raise EdgeError(f"{data} is split into {', '.join(parts)}: score one, e.g. --data {data / parts[-1]}")
    folders, samples, skipped, layout = labelled_pictures(data)
    used = sorted({s.label for s in samples})  # empty folders are reported, not matched
    labels, how = [-1] * len(folders), [""] * len(folders)
    if man.task == "classify":
        for i, (k, by) in zip(used, match_classes([folders[i] for i in used], man.classes, mapping or {},
                                                  skip_unknown)):
            labels[i], how[i] = k, by
        left_out = {folders[i]: sum(s.label == i for s in samples) for i in used if labels[i] < 0}
        samples = [s for s in samples if labels[s.label] >= 0]
        if not samples:
            raise EdgeError(f"{data}: no folder names one of the model's classes ({', '.join(man.classes)})")
    elif len(used) < 2:
        raise EdgeError(f"{data}: the face embedder is judged on pairs of people: give it two or more person "
                        "folders with pictures")
    else:
        labels, left_out = list(range(len(folders))), {}
    spec = prestep_spec(man)
    pre = None if as_is else Prestep(spec, detector_spec="auto")
    # each picture goes to the model's input as it is read (a folder of big photos never sits in memory), a batch
    # of inputs at a time through the model
    batch, outs, y, names, unreadable, missed = [], [], [], [], [], 0
    for n, s in enumerate(tqdm(samples, desc="eval", unit="picture", file=sys.stderr, disable=not progress,
                               mininterval=2)):
        try:
            img = read_image(s.path, "rgb")
            crop, _, miss = pre.for_picture(img) if pre else (img, None, False)
            batch.append(to_tensor([crop], man.input))
            y.append(labels[s.label])
            names.append(str(s.path.relative_to(data)))
            missed += miss
        except InputError:
            unreadable.append(str(s.path.relative_to(data)))
        if batch and (len(batch) == BATCH or n == len(samples) - 1):
            outs.append(model.predict(np.concatenate(batch)))
            batch = []
    if not outs:
        raise EdgeError(f"none of the {len(samples)} pictures under {data} could be read")
    outs = np.concatenate(outs)
    yy = np.asarray(y, np.int64)
    report: dict[str, Any] = {
        "artifact": str(artifact), "data": str(data), "family": man.family, "task": man.task,
        "framing": FACE_FRAMING if spec["kind"] == "face" and not as_is else "taken as they are",
        "pictures": len(yy), "unreadable": len(unreadable), "unreadable_files": unreadable[:20],
        "empty_folders": sorted(k.removeprefix("empty class folder ") for k in skipped),
        "no_face_found": int(missed) if spec["kind"] == "face" and not as_is else None,
        "card": {k: v for k, v in man.metrics.items() if k in CARD_KEYS},
    }
    report["layout"] = layout
    if man.task == "classify":
        report.update(_class_scores(yy, outs.argmax(1), man.classes))
        report["folders"] = {f: man.classes[i] for f, i in zip(folders, labels) if i >= 0}
        report["matched_by"] = {f: by for f, i, by in zip(folders, labels, how) if i >= 0}
        report["left_out"] = left_out  # --skip-unknown: folders naming no class, with their pictures
        probs = softmax_t(outs, man.temperature or 1.0)  # confidences as the apps show them (calibrated)
        wrong = np.flatnonzero(outs.argmax(1) != yy)
        wrong = wrong[np.argsort(-probs[wrong].max(1), kind="stable")]  # the most confident mistakes first
        report["mistakes"] = [{"file": names[i], "truth": man.classes[yy[i]],
                               "predicted": man.classes[int(outs[i].argmax())],
                               "confidence": round(float(probs[i].max()), 4)} for i in wrong[:MISTAKES]]
    else:
        dist, same = pair_scores(outs, yy)
        if not same.any():
            raise EdgeError(f"{data}: no person has two readable pictures, so there is no genuine pair to judge")
        report.update(people=len(set(y)), **verification_metrics(dist, same, threshold=float(thr)))
        rates = {"far": report["far"], "frr": report["frr"]}
        report["operating_points"] = [{"point": "the model's", "threshold": float(thr), **rates},
                                      *operating_points(dist, same)]
        return report, (dist, same)
    return report, None


def markdown(report: dict[str, Any]) -> str:
    """The report for people: what was scored, the figures, the per-class table and confusion matrix."""
    from edge.bench.report import markdown_table

    lines = [f"# {Path(report['artifact']).name} on {report['data']}", ""]
    if "rows" in report:
        dropped = ", ".join(f"{k} {v}" for k, v in report["dropped"].items()) or "none"
        station = ", ".join(f"{k} {v}" for k, v in report["station"].items())
        lines += [f"Read as {report['read_as']}" + (f" ({station})" if station else "") + ".", "",
                  f"{report['valid_rows']} of {report['rows']} rows valid (dropped: {dropped})"
                  + (f"; {report['without_rainfall']} without rainfall left out of the outcome label"
                     if report["without_rainfall"] else "")
                  + f"; label '{report['label']}' (the tree was trained on '{report['trained_on']}'), "
                  f"{report['positive_rate']:.1%} {report['classes'][1]}.", ""]
    else:
        lines += [f"{report['pictures']} pictures, {report['framing']}; unreadable (skipped) {report['unreadable']}"
                  + (f"; no face found (whole picture used) {report['no_face_found']}"
                     if report["no_face_found"] is not None else "")
                  + (f"; empty folders: {', '.join(report['empty_folders'])}" if report["empty_folders"] else "")
                  + ".", ""]
        if report.get("folders"):  # how each folder (or file-name label) was read as a class
            read = ", ".join(f"{f} -> {c}" + ("" if report["matched_by"][f] == "name" else
                                              f" ({report['matched_by'][f]})")
                             for f, c in report["folders"].items())
            lines += [f"Read as a {report['layout']}: {read}."
                      + (" Left out (no class of the model's, --skip-unknown): "
                         + ", ".join(f"{f} ({n} pictures)" for f, n in report["left_out"].items()) + "."
                         if report["left_out"] else ""), ""]
    card = ", ".join(f"{k.removeprefix('test_')} {v}" for k, v in report["card"].items())
    if report["task"] == "classify":
        lines += [f"Accuracy **{report['accuracy']:.4f}**, macro F1 {report['macro_f1']:.4f} (over the "
                  f"{len(report['classes_present'])} classes present). On its own test split (manifest): "
                  f"{card or '-'}.", ""]
        rows = [[c, str(v["support"]), f"{v['precision']:.4f}", f"{v['recall']:.4f}", f"{v['f1']:.4f}"]
                for c, v in report["per_class"].items() if v["support"]]
        lines += [markdown_table(["class", "rows" if "rows" in report else "pictures", "precision", "recall", "F1"],
                                 rows), "",
                  "Confusion (rows: truth, columns: predicted):", ""]
        present = [report["classes"].index(c) for c in report["classes_present"]]
        cm = report["confusion"]
        lines += [markdown_table(["", *report["classes"]], [[report["classes"][i], *map(str, cm[i])] for i in present])]
        if report.get("mistakes"):
            lines += ["", f"The {len(report['mistakes'])} most confident mistakes (the JSON lists them too):", "",
                      markdown_table(["picture", "truth", "predicted", "confidence"],
                                     [[m["file"], m["truth"], m["predicted"], f"{m['confidence']:.3f}"]
                                      for m in report["mistakes"]])]
    else:
        lines += [f"{report['people']} people, {report['pairs']} pairs ({report['genuine_pairs']} of the same person) "
                  f"at distance {report['threshold']}: accuracy **{report['accuracy']:.4f}**, F1 {report['f1']:.4f}, "
                  f"false accepts {report['far']:.4f}, false rejects {report['frr']:.4f}; EER {report['eer']:.4f}, "
                  f"ROC-AUC {report['roc_auc']:.4f}. On its own test split (manifest): {card}.", "",
                  "Thresholds measured on these pairs (accept a pair at or under the distance):", "",
                  markdown_table(["", "distance", "false accepts", "false rejects"],
                                 [[p["point"], *(("-", "-", "-") if p["threshold"] is None else
                                                 (str(p["threshold"]), f"{p['far']:.4f}", f"{p['frr']:.4f}"))]
                                  for p in report["operating_points"]]), "",
                  ("'-': too few strangers' pairs to tell. " if any(p["threshold"] is None
                                                                     for p in report["operating_points"]) else "")
                  + "To run the attendance station at one: `edge attend run --threshold DISTANCE` (a face must also "
                  f"be nearer one person than any other). Chosen on {report['genuine_pairs']} same-person pairs, a "
                  "threshold is only as good as their variety: include the light and angles the station will see."]
    if report.get("png"):
        lines += ["", f"![{'ROC' if 'roc_auc' in report else 'confusion matrix'}]({Path(report['png']).name})"]
    return "\n".join(lines) + "\n"
