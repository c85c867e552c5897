"""The ``edge`` command line: export, verify, bench, train, and the main job (``edge pipeline``)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from edge.errors import EdgeError
from edge.export.int8_targets import DEFAULT_TARGET, INT8_TARGETS
from edge.families import FAMILIES, get_family, parse_families
from edge.formats import FORMATS, parse_formats

DEFAULT_ARTIFACTS = Path("artifacts")


def _zoo() -> Path:
    """models/zoo: trained artifacts committed with the repository (installed inside edge.models)."""
    from edge.zoo import zoo_dir

    return zoo_dir()



def _print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, default=str))


def _threads(text: str) -> list[int]:
    try:
        vals = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise EdgeError(f"--threads takes a comma list of integers, got '{text}'") from None
    if not vals or min(vals) < 1:
        raise EdgeError("--threads values must be >= 1")
    return vals


# ---------------------------------------------------------------- commands
def cmd_families(a: argparse.Namespace) -> int:
    rows = [{"family": f.name, "title": f.title, "kind": f.kind, "task": f.task,
             "input": f.input_spec().shape, "dataset": f.dataset, "paper": f.paper} for f in FAMILIES.values()]
    if a.json:
        _print_json(rows)
    else:
        from edge.bench.report import plain_table

        print(plain_table(["Family", "Task", "Input", "Data", "Paper"],
                          [[r["family"], r["task"], str(r["input"]), r["dataset"], r["paper"]] for r in rows]))
    return 0


def cmd_formats(a: argparse.Namespace) -> int:
    rows = [{"format": f.name, "suffix": f.suffix, "int8": f.int8, "families": list(f.kinds), "extra": f.extra,
             "export_needs": list(f.export_needs), "run_needs": list(f.run_needs),
             "installed": not f.missing(True) and not f.missing(False), "description": f.description}
            for f in FORMATS.values()]
    if a.json:
        _print_json(rows)
    else:
        from edge.bench.report import plain_table

        print(plain_table(["Format", "Suffix", "int8", "For", "Installed", "Description"],
                          [[r["format"], r["suffix"], "yes" if r["int8"] else "", "/".join(r["families"]),
                            "yes" if r["installed"] else f"no: pip install 'edge[{r['extra']}]'", r["description"]]
                           for r in rows]))
    return 0


def _resolve_targets(target: str) -> list[tuple[Any, Path | None]]:
    """A family name, 'all', a comma list, or a checkpoint file -> [(family, checkpoint)]. A missing checkpoint or
    an unknown family is refused before torch is imported (seconds)."""
    p = Path(target)
    made = max((f for f in FORMATS.values() if f.name != "torch" and p.name.endswith(f.suffix)),
               key=lambda f: len(f.suffix), default=None)
    if made is not None and p.suffix not in (".pt", ".pkl"):
        raise EdgeError(f"{p} is an exported {made.name} file: 'edge export' starts from a family or a checkpoint "
                        f"(.pt/.pkl); 'edge verify {p}' checks it, and an .int8.onnx file can be re-stored for "
                        f"another CPU with --int8-target")
    if p.suffix in (".pt", ".pkl") or p.exists():
        if not p.exists():
            raise EdgeError(f"checkpoint not found: {p}")
        try:
            from edge.models.checkpoint import read_checkpoint
        except ImportError:
            raise EdgeError("exporting a checkpoint needs torch: pip install 'edge[export]'") from None
        payload = read_checkpoint(p)
        return [(get_family(payload["family"]), p)]
    families = parse_families(target)
    from edge.export.reference import default_checkpoint

    return [(f, default_checkpoint(f)) for f in families]


def cmd_export(a: argparse.Namespace) -> int:
    if a.target.endswith((".onnx", ".onnx.json")):
        return _restore_int8(a)
    formats = parse_formats(a.formats, include_torch=True)
    try:
        targets = _resolve_targets(a.target)
        from edge.export.pipeline import export_family
    except ImportError as exc:
        raise EdgeError(f"export needs the export extra ({exc.name} missing): pip install 'edge[export]'") from None
    from tqdm import tqdm

    results = []
    total = sum(len([f for f in formats if fam.kind in f.kinds]) for fam, _ in targets)
    with tqdm(total=total, desc="export", unit="artifact", disable=a.json or a.quiet, file=sys.stderr) as bar:
        for fam, ckpt in targets:
            if fam.kind == "tree" and ckpt is None:
                _auto_train_tree(a)
                from edge.export.reference import default_checkpoint

                ckpt = default_checkpoint(fam)
            bar.set_postfix_str(fam.name)
            results += export_family(fam, formats, Path(a.out), ckpt, a.imgsz, a.calib, a.verify_n, progress=bar,
                                     int8_target=a.int8_target or DEFAULT_TARGET)
    rows = [r.__dict__ for r in results if r.status != "skipped"]
    if a.json:
        _print_json(rows)
    else:
        from edge.bench.report import plain_table

        print(plain_table(
            ["Family", "Format", "Status", "Size MB", "Parity", "Seconds", "Artifact / reason"],
            [[r["family"], r["format"], r["status"], f"{r['size_bytes'] / 1e6:.2f}" if r["size_bytes"] else "",
              "reference" if r["format"] == "torch" else _parity_text(r["parity"]), f"{r['seconds']:.1f}",
              r["artifact"] if r["status"] == "ok" else r["reason"]]
             for r in rows]))
    failed = [r for r in rows if r["status"] != "ok"]
    if failed:
        print(f"edge: {len(failed)} of {len(rows)} exports failed", file=sys.stderr)
        return 1
    return 0


def _auto_train_tree(a: argparse.Namespace) -> None:
    from edge.models.train_tree import train_trail

    if not getattr(a, "quiet", False):
        print("trail: no trained tree in runs/trail; training it first (a few seconds)", file=sys.stderr)
    train_trail()


def _parity_text(p: dict) -> str:
    if not p:
        return ""
    if "top1_agreement" in p and p.get("max_abs_diff", 1) > 0:
        return f"top1 {p['top1_agreement']:.3f} rel {p['rel_max_diff']:.1e}"
    if p.get("max_abs_diff") == 0:
        return "bit-exact" + (" (+MicroPython)" if "micropython" in p else "")
    return f"cos {p.get('cosine_min', 0):.5f} rel {p.get('rel_max_diff', 0):.1e}"


def cmd_verify(a: argparse.Namespace) -> int:
    from edge.manifest import resolve_artifact

    resolve_artifact(Path(a.artifact))  # a missing artifact or manifest is refused before torch is imported
    try:
        from edge.export.pipeline import verify_artifact
    except ImportError as exc:
        raise EdgeError(f"verify needs the reference model ({exc.name} missing): pip install 'edge[export]'") from None
    p = verify_artifact(Path(a.artifact), a.n)
    if a.json:
        _print_json(p)
    else:
        for k, v in p.items():
            print(f"{k:18s} {v}")
    if not p["within_tolerance"]:
        print(f"edge: {a.artifact} is out of tolerance: {'; '.join(p['broken'])}", file=sys.stderr)
        return 1
    return 0


def cmd_calibrate(a: argparse.Namespace) -> int:
    """Fit each classifier's softmax temperature on its validation split; store it in the manifest."""
    from edge.calibrate import calibrate
    from edge.zoo import resolve_model

    reports = [calibrate(resolve_model(m), threads=a.threads, write=not a.dry_run) for m in a.models]
    if a.json:
        _print_json(reports)
        return 0
    print(f"{'artifact':44s} {'T':>7s} {'test ECE before':>16s} {'after':>7s} {'test NLL before':>16s} {'after':>7s}")
    for r in reports:
        print(f"{Path(r['artifact']).name:44s} {r['temperature']:7.3f} {r['test_ece']['before']:16.4f} "
              f"{r['test_ece']['after']:7.4f} {r['test_nll']['before']:16.4f} {r['test_nll']['after']:7.4f}")
    if a.dry_run:
        print("(dry run: manifests unchanged)")
    return 0


def cmd_eval(a: argparse.Namespace) -> int:
    """Score a deployed model on a labelled folder of the user's pictures (torch-free)."""
    from edge.evaluate import evaluate, markdown, parse_class_map
    from edge.zoo import resolve_model

    mapping = parse_class_map(a.map)
    if not Path(a.data).exists():
        raise EdgeError(f"data not found: {a.data}")
    out = Path(a.out) if a.out else None
    report = evaluate(resolve_model(a.model), a.data, mapping, as_is=a.as_is, label=a.label, threads=a.threads,
                      progress=not a.json, png=out.with_suffix(".png") if out else None, skip_unknown=a.skip_unknown)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
        out.with_suffix(".md").write_text(markdown(report))
    if a.json:
        _print_json(report)
    else:
        print(markdown(report), end="")
        if out:
            print(f"wrote {out.with_suffix('.json')}, .md" + (", .png" if report.get("png") else
                                                              " (no .png: matplotlib is not installed)"))
    return 0


def cmd_info(a: argparse.Namespace) -> int:
    from edge.manifest import read_manifest

    _, man = read_manifest(Path(a.artifact), check_hash=True)
    _print_json(man.to_dict())
    return 0


def cmd_bench(a: argparse.Namespace) -> int:
    from edge.bench.report import (
        COLUMNS,
        REC_HEADER,
        notes,
        plain_table,
        recommendations_rows,
        table_rows,
        write_report,
    )
    from edge.bench.runner import run_bench

    fams = [f.name for f in parse_families(a.families)]
    fmts = [f.name for f in parse_formats(a.formats, include_torch=True)]
    extra = {"zoo": _zoo()} if getattr(a, "with_zoo", False) and _zoo().is_dir() else None
    result = run_bench(Path(a.artifacts), fams, fmts, _threads(a.threads), a.runs, a.repeats, a.seconds,
                       show_progress=not a.json, extra_roots=extra)
    paths = write_report(result, Path(a.out), a.name)
    if a.json:
        _print_json(result)
    else:
        print(plain_table(COLUMNS, table_rows(result)))
        print()
        print(plain_table(REC_HEADER, recommendations_rows(result)))
        for line in notes(result):
            print(f"\nnote: {line}")
        print("\nwrote " + ", ".join(str(p) for p in paths.values()))
    return 0


def cmd_bench_compare(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="edge bench compare",
                                 description="Two benchmark JSON files side by side as ratios (B/A < 1: B faster).")
    ap.add_argument("a", type=Path)
    ap.add_argument("b", type=Path)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    from edge.bench.report import compare, device_line, load_result, plain_table

    ra, rb = load_result(a.a), load_result(a.b)
    header, rows = compare(ra, rb)
    if a.json:
        _print_json([dict(zip(header, r)) for r in rows])
    else:
        print(f"A: {device_line(ra)}\nB: {device_line(rb)}\n")
        print(plain_table(header, rows))
    return 0


def cmd_bench_apps(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="edge bench apps",
                                 description="FPS of edge live, POST /predict latency, attendance FPS and accuracy "
                                             "(with the dlib pipeline side by side)")
    ap.add_argument("--what", default="live,serve,attend", help="comma list of live, serve, attend")
    ap.add_argument("--artifacts", default="artifacts", help="fp32 ONNX files found here are measured too")
    ap.add_argument("--seconds", type=float, default=20.0, help="load duration per model for serve")
    ap.add_argument("--out", default="docs/bench")
    ap.add_argument("--face-model", help="attend: this exported face embedder instead of the zoo's (a candidate)")
    ap.add_argument("--no-dlib", action="store_true", help="attend: skip the dlib pipeline")
    a = ap.parse_args(argv)
    from edge.bench.apps import run

    what = tuple(w.strip() for w in a.what.split(",") if w.strip())
    bad = set(what) - {"live", "serve", "attend"}
    if bad:
        raise EdgeError(f"unknown --what {', '.join(sorted(bad))}: live, serve, attend")
    if a.face_model and not Path(a.face_model).is_file():
        raise EdgeError(f"--face-model: no such file {a.face_model}")
    run(Path(a.out), what, Path(a.artifacts), a.seconds, face_model=a.face_model, with_dlib=not a.no_dlib)
    print((Path(a.out) / "apps-x86-2core.md").read_text())
    return 0


def cmd_bench_trail(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="edge bench trail",
                                 description="hub ingest rate (QoS 1), tree per row in C/CPython/MicroPython, "
                                             "firmware RAM and .mpy sizes")
    ap.add_argument("-n", type=int, default=20000, help="readings to publish")
    ap.add_argument("--out", default="docs/bench")
    a = ap.parse_args(argv)
    from edge.bench.trail import run

    run(Path(a.out), a.n)
    print((Path(a.out) / "trail-x86-2core.md").read_text())
    return 0


# `edge bench X ...` with its own parser (plain `edge bench` takes the artifact filters)
BENCH_SUBCOMMANDS = {"compare": cmd_bench_compare, "apps": cmd_bench_apps, "trail": cmd_bench_trail}


def _grid_cells(specs: list[str] | None) -> list[tuple[str, float]] | None:
    """['adam:0.001', ...] -> [('adam', 0.001), ...]; None keeps the whole grid."""
    if not specs:
        return None
    from edge.models.train_face import GRID

    cells = []
    for spec in specs:
        opt, _, lr = spec.partition(":")
        try:
            cell = (opt, float(lr))
        except ValueError:
            cell = None
        if cell is None or cell[0] not in GRID["optimizer"] or cell[1] not in GRID["lr"]:
            raise EdgeError(f"--grid-cell {spec}: expected OPT:LR with OPT in {GRID['optimizer']} and LR in "
                            f"{GRID['lr']}")
        cells.append(cell)
    return cells


# the flags of `edge train` each trainer reads; any other flag given is refused, not silently dropped
TRAIN_FLAGS_COMMON = {"family", "data", "out", "seed", "json"}
TRAIN_FLAGS = {
    "trail": {"label"},
    "face": {"epochs", "imgsz", "lr", "device", "threads", "patience", "protocol", "arch", "teacher", "distill_data",
             "distill_images", "clahe", "grid", "grid_cell", "resume"},
    "image": {"epochs", "imgsz", "batch", "lr", "device", "threads", "max_per_class", "patience", "arch", "no_stn",
              "backgrounds", "teacher", "distill", "clahe", "resume", "init"},
}


def _unread_train_flags(a: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Refuse flags given to `edge train` that the family's trainer would not read, naming who reads them."""
    group = a.family if a.family in ("trail", "face") else "image"
    given = [k for k, v in vars(a).items()
             if k not in ("cmd", "fn", "parser", "verbose") and v != parser.get_default(k)]
    unread = [k for k in given if k not in TRAIN_FLAGS_COMMON | TRAIN_FLAGS[group]]
    if unread:
        def readers(k: str) -> str:
            return ", ".join(g if g != "image" else "fer, tomato, asl" for g in TRAIN_FLAGS if k in TRAIN_FLAGS[g])

        flags = "; ".join(f"--{k.replace('_', '-')} (read by: {readers(k) or 'none'})" for k in unread)
        raise EdgeError(f"edge train {a.family} does not read {flags}")


def _interruptible(train: Any, out: Path) -> Any:
    """Run a trainer; on Ctrl-C say where the run stopped and how to go on (its last.pt holds the last whole epoch)."""
    try:
        return train()
    except KeyboardInterrupt:
        saved = sorted(out.rglob("last.pt"), key=lambda f: f.stat().st_mtime) if out.is_dir() else []
        if saved:  # a grid's is in its cell's folder
            print(f"edge: interrupted; {saved[-1]} holds the last finished epoch: the same command with --resume "
                  "goes on from there", file=sys.stderr)
        raise


def cmd_train(a: argparse.Namespace) -> int:
    fam = get_family(a.family)
    _unread_train_flags(a, a.parser)
    if a.clahe is not None and not 0 < a.clahe <= 40:
        raise EdgeError("--clahe CLIP is for the image families, with a clip limit in (0, 40] (e.g. 2)")
    if fam.name == "trail":
        from edge.models.train_tree import train_trail

        m = train_trail(Path(a.data) if a.data else None, Path(a.out or "runs/trail"), a.label, seed=a.seed)
        if a.json:
            _print_json(m)
        else:
            for lab in ("rule", "outcome"):
                for split in ("chronological", "random_8_2"):
                    s = m[lab].get(split)
                    print(f"{lab:8s} {split:14s} " + (
                        f"accuracy {s['accuracy']:.4f}  F1(Berbahaya) {s['f1_berbahaya']:.4f}  n={s['n_test']}" if s
                        else m[lab].get(f"{split}_skipped", m[lab].get("skipped", "not scored"))))
            ra = m["range_agreement"]
            print(f"read as {m['read_as']}; dropped rows: {m['dropped']}; without rainfall: "
                  f"{m['rows_without_rainfall']}; agrees with the rule on {ra['deployed']:.2%} of "
                  f"{ra['readings']} readings over the station's range; saved "
                  f"{Path(a.out or 'runs/trail') / 'best.pkl'}")
        return 0
    if fam.name == "face":
        recipe = "face-mobilenet" if a.arch == "mobilenet" else "face"
        if a.teacher:
            if a.teacher != "dlib":
                raise EdgeError(f"face --teacher: only 'dlib' (got '{a.teacher}')")
            if a.arch != "mobilenet":
                raise EdgeError("--teacher distils into the MobileNetV2 embedder: add --arch mobilenet")
            recipe = f"face-mobilenet-{a.teacher}"
        if a.grid_cell and not a.grid:
            raise EdgeError("--grid-cell picks cells of --grid: add --grid")
        if (a.distill_data or a.distill_images) and not a.teacher:
            raise EdgeError("--distill-data/--distill-images go with --teacher")
        # the flags are checked before torch is imported (seconds): a wrong one is refused at once
        from edge.models.train_face import face_config, train_face

        if a.data and not Path(a.data).is_dir():
            raise EdgeError(f"data folder not found: {a.data} (face: one folder per person)")
        fc = face_config(recipe, seed=a.seed, threads=a.threads, imgsz=a.imgsz, epochs=a.epochs, lr=a.lr,
                         protocol=a.protocol, distill_data=a.distill_data, distill_images=a.distill_images,
                         clahe=a.clahe, data=a.data, patience=a.patience, device=a.device)
        if a.grid:
            from edge.models.train_face import train_face_grid

            out = Path(a.out or f"runs/{recipe}-grid")
            g = _interruptible(lambda: train_face_grid(fc, out, cells=_grid_cells(a.grid_cell), resume=a.resume), out)
            if a.json:
                _print_json(g)
            else:
                print((out / "grid.md").read_text(), end="")
                print(f"({g['wall_minutes']} min) -> {out / 'grid.json'}")
            return 0
        out = Path(a.out or f"runs/{recipe}" + ("" if a.protocol == "identities" else f"-{a.protocol}"))
        m = _interruptible(lambda: train_face(fc, out, resume=a.resume), out)
        t = m["test"]
        if a.json:
            _print_json({k: m[k] for k in ("val", "test", "wall_minutes", "hardware")})
        else:
            who = "unseen people" if a.protocol == "identities" else "seen people, unseen images"
            print(f"face: {who} F1 {t['f1']:.4f}, EER {t['eer']:.4f}, ROC-AUC {t['roc_auc']:.4f} at "
                  f"distance {t['threshold']:.3f} ({m['wall_minutes']} min) -> {out / 'best.pt'}")
        return 0
    # the flags and the data folder are checked before torch is imported (seconds)
    if a.backgrounds is not None:
        if fam.name != "asl":
            raise EdgeError("--backgrounds is for asl (hands cut out of one wall's frames); not for " + fam.name)
        if not 0 <= a.backgrounds <= 1:
            raise EdgeError(f"--backgrounds is a probability in [0, 1], got {a.backgrounds}")
    if a.distill is not None and not a.teacher:
        raise EdgeError("--distill weighs a --teacher: add --teacher RUN")
    if a.data and not Path(a.data).exists():
        raise EdgeError(f"data folder not found: {a.data}")
    try:
        from edge.models.train_image import default_config, train_classifier
    except ImportError as exc:
        raise EdgeError(f"training needs the train extra ({exc.name} missing): pip install 'edge[train]'") from None
    recipe = f"{fam.name}-mobilenet" if a.arch == "mobilenet" else fam.name
    cfg = default_config(recipe, imgsz=a.imgsz, epochs=a.epochs, batch=a.batch, lr=a.lr, seed=a.seed,
                         max_per_class=a.max_per_class, threads=a.threads, device=a.device, patience=a.patience)
    if fam.name == "asl" and a.no_stn:
        cfg.builder_kwargs = {**cfg.builder_kwargs, "stn": False}
    if a.backgrounds is not None:
        cfg.backgrounds = a.backgrounds
    if a.teacher:
        cfg.teacher = a.teacher
        if a.distill is not None:
            cfg.distill = a.distill
    cfg.init = a.init
    cfg.clahe = a.clahe or 0.0
    out = Path(a.out or f"runs/{recipe}")
    m = _interruptible(lambda: train_classifier(cfg, out, Path(a.data) if a.data else None, resume=a.resume), out)
    if a.json:
        _print_json({k: m[k] for k in ("val", "test", "wall_minutes", "hardware")})
    else:
        print(f"{recipe}: val accuracy {m['val']['accuracy']:.4f}, test accuracy {m['test']['accuracy']:.4f}, "
              f"macro F1 {m['test']['macro_f1']:.4f} ({m['wall_minutes']} min) -> {out / 'best.pt'}")
    return 0


def cmd_ensemble(a: argparse.Namespace) -> int:
    """Several trained runs of one family as one model (mean of their logits), scored on val and test."""
    missing = [r for r in a.runs if not Path(r).exists()]
    if missing:  # before torch is imported (seconds)
        raise EdgeError(f"checkpoint not found: {missing[0]}")
    try:
        from edge.models.ensemble import ensemble_runs
    except ImportError as exc:
        raise EdgeError(f"ensembles need the train extra ({exc.name} missing): pip install 'edge[train]'") from None
    if a.threads:
        import torch

        torch.set_num_threads(a.threads)
    m = ensemble_runs([Path(r) for r in a.runs], Path(a.out), flip=a.flip, data=Path(a.data) if a.data else None)
    if a.json:
        _print_json({k: m[k] for k in ("val", "test", "members", "wall_minutes")})
    elif m["family"] == "face":
        for r in m["members"]:
            print(f"member {r['run']}: test EER {r['test_eer']}, AUC {r['test_roc_auc']}, F1 {r['test_f1']}")
        t = m["test"]
        print(f"ensemble of {len(m['members'])}{' + mirror' if a.flip else ''}: test EER {t['eer']:.4f}, AUC "
              f"{t['roc_auc']:.4f}, F1 {t['f1']:.4f} at distance {t['threshold']:.3f} -> {Path(a.out) / 'best.pt'}")
    else:
        for r in m["members"]:
            print(f"member {r['run']}: val {r['val_accuracy']}, test {r['test_accuracy']}")
        print(f"ensemble of {len(m['members'])}{' + mirror' if a.flip else ''}: val accuracy "
              f"{m['val']['accuracy']:.4f}, test accuracy {m['test']['accuracy']:.4f}, macro F1 "
              f"{m['test']['macro_f1']:.4f} -> {Path(a.out) / 'best.pt'}")
    return 0


def cmd_publish(a: argparse.Namespace) -> int:
    """Card + zoo for a trained family (accuracy after export measured through the runtime)."""
    from edge.models.cards import write_card

    fam = get_family(a.family)
    run = Path(a.run or f"runs/{fam.name}")
    command = a.command or f"edge train {fam.name} && edge export {fam.name} && edge publish {fam.name}"
    card = write_card(fam.name, run, Path(a.artifacts), command, [f.name for f in parse_formats(a.zoo_formats)])
    print(f"wrote {card}")
    if fam.task == "classify" and fam.kind == "image":  # the zoo's confidences: fit the temperature on val
        from edge.calibrate import calibrate
        from edge.zoo import zoo_dir

        for man in sorted((zoo_dir() / fam.name).glob("*.json")):
            try:
                r = calibrate(man)
            except EdgeError as exc:
                print(f"not calibrated: {exc}", file=sys.stderr)
            else:
                print(f"calibrated {man.name}: T {r['temperature']}, test ECE {r['test_ece']['before']} -> "
                      f"{r['test_ece']['after']}")
    return 0


def cmd_pipeline(a: argparse.Namespace) -> int:
    """The main job: export every family to every format, verify, benchmark, print and save."""
    ns = argparse.Namespace(target=a.families, formats=a.formats, out=a.artifacts, imgsz=None, calib=a.calib,
                            verify_n=16, json=False, quiet=False, int8_target=a.int8_target)
    rc_export = cmd_export(ns)
    bench_ns = argparse.Namespace(families=a.families, formats=a.formats, artifacts=a.artifacts, threads=a.threads,
                                  runs=a.runs, repeats=a.repeats, seconds=a.seconds, out=a.out, name=a.name,
                                  json=False, with_zoo=True)
    rc_bench = cmd_bench(bench_ns)
    return rc_export or rc_bench


# ------------------------------------------------------------------ parser
def _restore_int8(a: argparse.Namespace) -> int:
    """``edge export X.int8.onnx --int8-target T``: the same integers stored for another CPU, no checkpoint."""
    if not a.int8_target:
        raise EdgeError(f"{a.target} is an ONNX file: 'edge export' re-stores an ONNX int8 file for another CPU "
                        f"with --int8-target ({', '.join(INT8_TARGETS)} or here); new exports start from a family "
                        f"or a checkpoint")
    from edge.export.int8_targets import retarget

    try:
        r = retarget(a.target, a.int8_target, Path(a.out))
    except ImportError as exc:
        raise EdgeError(f"re-storing int8 weights needs the onnx package ({exc.name} missing): pip install onnx"
                        ) from None
    if a.json:
        _print_json(r)
    else:
        from edge.bench.report import plain_table

        def score(v: object) -> str:
            return "" if v is None else f"{v:.4f}"

        print(plain_table(["Family", "Target", "Weights", f"{r['metric'] or 'Metric'} source here", "Now here",
                           "Artifact"],
                          [[r["family"], r["target"], r["weights"], score(r["source_here"]), score(r["here"]),
                            r["artifact"]]]))
        if r.get("note"):
            print(f"note: {r['note']}")
    return 0


def _int8_target_args(p: argparse.ArgumentParser, restore: bool = False) -> None:
    """--int8-target (and its old spelling --int8-reduce-range) for the commands that export."""
    targets = "; ".join(f"{t.name}: {t.note}" for t in INT8_TARGETS.values())
    g = p.add_mutually_exclusive_group()
    g.add_argument("--int8-target", choices=[*INT8_TARGETS, "here"], default=None,
                   help=f"the CPU the ONNX int8 file is for, which decides how its weights are stored (default "
                        f"{DEFAULT_TARGET}; 'here' = this CPU's). {targets}"
                        + (". With an .int8.onnx file as the target, its weights are re-stored without the checkpoint"
                           if restore else ""))
    g.add_argument("--int8-reduce-range", dest="int8_target", action="store_const", const="x86-fast",
                   help="the same as --int8-target x86-fast (7-bit weights)")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="edge", description=__doc__)
    ap.add_argument("-v", "--verbose", action="store_true", help="log details (and tracebacks) to stderr")
    sub = ap.add_subparsers(dest="cmd", metavar="COMMAND")

    p = sub.add_parser("families", help="list the model families")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_families)

    p = sub.add_parser("formats", help="list the export formats and whether their packages are installed")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_formats)

    p = sub.add_parser("export", help="export a family (or a checkpoint) to edge formats, with parity checks")
    p.add_argument("target", help="family name, comma list, 'all', a checkpoint file (.pt/.pkl), or an .int8.onnx "
                                  "file to re-store for --int8-target")
    p.add_argument("--formats", default="all", help=f"comma list or 'all' ({', '.join(FORMATS)})")
    p.add_argument("--out", default=str(DEFAULT_ARTIFACTS), help="output folder (default: artifacts)")
    p.add_argument("--imgsz", type=int, default=None, help="square input size (default: the family's)")
    p.add_argument("--calib", type=int, default=200, help="calibration images for int8 (default 200)")
    p.add_argument("--verify-n", type=int, default=16, help="inputs for the parity check (default 16)")
    _int8_target_args(p, restore=True)
    p.add_argument("--json", action="store_true")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(fn=cmd_export)

    p = sub.add_parser("verify", help="re-check an artifact's parity against its source model")
    p.add_argument("artifact")
    p.add_argument("-n", type=int, default=16, help="number of inputs")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_verify)

    p = sub.add_parser("calibrate", help="fit a classifier's softmax temperature on its validation split (through "
                                         "the runtime) and store it in the manifest; reports test ECE before/after")
    p.add_argument("models", nargs="+", help="zoo names (fer, asl, tomato) or artifact paths")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--dry-run", action="store_true", help="report only; leave the manifests as they are")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_calibrate)

    p = sub.add_parser("eval", help="score a deployed model on your own labelled pictures (one folder per class, or "
                                    "per person for the face model), framed as the apps frame an upload")
    p.add_argument("model", help="zoo name (fer, asl, tomato, face, trail) or an artifact path")
    p.add_argument("--data", required=True,
                   help="folder with one subfolder per class (face: per person; other data sets' names such as "
                        "happiness, AN, unripe are understood), or a flat folder of pictures named <class>_*.jpg; "
                        "trail: a BMKG daily table (.csv or BMKG Data Online's .xlsx)")
    p.add_argument("--label", choices=["rule", "outcome"],
                   help="trail: score against this label definition (default: the one the tree was trained on)")
    p.add_argument("--map", help="folder=class renames, comma-separated (e.g. joy=happy,anger=angry)")
    p.add_argument("--skip-unknown", action="store_true",
                   help="leave out folders that name none of the model's classes (e.g. ASL's space, del, nothing), "
                        "listed in the report, instead of refusing them")
    p.add_argument("--as-is", action="store_true", help="feed whole pictures: no face finding")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", help="write the report here as .json and .md, and .png (the confusion matrix or ROC "
                   "curve) where matplotlib is installed")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_eval)

    p = sub.add_parser("info", help="print an artifact's manifest (and check its sha256)")
    p.add_argument("artifact")
    p.set_defaults(fn=cmd_info)

    p = sub.add_parser("bench", help="benchmark exported artifacts; 'edge bench compare A.json B.json' compares; "
                                         "'edge bench apps' measures live/serve/attend; 'edge bench trail' the station")
    _bench_args(p)
    p.set_defaults(fn=cmd_bench)

    p = sub.add_parser("train", help="train a family: checkpoint + metrics.json (+ confusion PNG) in runs/<family>")
    p.add_argument("family", choices=list(FAMILIES))
    p.add_argument("--data", help="data file, or a folder with one subfolder per class (split 70/15/15 by file-name "
                   "block) or with train/ [val/] [test/] folders of them (your split) (default: EDGE_DATA)")
    p.add_argument("--out", help="run folder (default runs/<family>)")
    p.add_argument("--label", default="rule", choices=["rule", "outcome"], help="trail: label definition to deploy")
    p.add_argument("--epochs", type=int)
    p.add_argument("--imgsz", type=int,
                   help="square input size (CPU defaults: fer 96, tomato 96, asl 64 (B4) or 96 (--arch mobilenet))")
    p.add_argument("--batch", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--max-per-class", type=int, help="cap training images per class (quick runs)")
    p.add_argument("--patience", type=int, help="fer, tomato, asl: epochs without a better val accuracy before "
                                                "stopping (default: the recipe's, 4-6; >= --epochs never stops); "
                                                "face: without a better val AUC - EER (default 8)")
    p.add_argument("--protocol", choices=["identities", "paper"], default="identities",
                   help="face: 'identities' = verify 10 people never seen in training (default); 'paper' = 30 "
                        "people, images 8:2, fixed epochs (the paper's seen-people protocol)")
    p.add_argument("--arch", choices=["default", "mobilenet"], default="default",
                   help="tomato, asl, face: 'mobilenet' = ImageNet-initialised MobileNetV2 (asl keeps the STN; "
                        "face: the embedder)")
    p.add_argument("--no-stn", action="store_true", help="asl: train without the Spatial Transformer")
    p.add_argument("--backgrounds", type=float, metavar="P",
                   help="asl: paste the hands on other backgrounds (procedural, tomato, FER faces) with probability "
                        "P (default: 0.5 with --arch mobilenet, 0 = the plain frames for the from-scratch B4)")
    p.add_argument("--teacher",
                   help="fer, tomato, asl: a trained run or checkpoint of the family (e.g. an `edge ensemble`), or a "
                        "deployed artifact with its manifest (e.g. models/zoo/fer/fer.int8.onnx) to distil: its "
                        "softened outputs on the training images become a second target; several, comma-separated, "
                        "teach as one (their logits averaged); face --arch "
                        "mobilenet: 'dlib' = also distil dlib's ResNet vectors on FER2013's faces (needs edge[attend])")
    p.add_argument("--distill", type=float, help="with a run as --teacher: weight of the teacher's target in (0, 1] "
                                                 "(default 0.7; the labels get the rest)")
    p.add_argument("--distill-data", help="face --teacher: folder(s) of face crops under EDGE_DATA, comma-separated "
                                           "(default: the recipe's)")
    p.add_argument("--distill-images", type=int, help="face --teacher: how many of those faces (default: the recipe's)")
    p.add_argument("--clahe", type=float, metavar="CLIP",
                   help="image families: local contrast equalisation (CLAHE, this clip limit, e.g. 2) on every picture "
                        "in training and, through the manifest, in every runtime (for hard side light); default off")
    p.add_argument("--grid", action="store_true",
                   help="face: the paper's optimiser (sgd, adam) x lr (0.01, 0.001) table on its protocol, constant "
                        "lr, scored after 1/2, 3/4 and all of --epochs (the paper's 50/75/100); writes grid.md")
    p.add_argument("--grid-cell", action="append", metavar="OPT:LR",
                   help="face --grid: only this optimiser:lr cell, e.g. adam:0.001 (repeatable)")
    p.add_argument("--resume", action="store_true",
                   help="continue from the run folder's last.pt (written after every epoch): an interrupted run goes "
                        "on where it stopped, a finished one for more --epochs (face --grid: its interrupted cell)")
    p.add_argument("--init", help="fer, tomato, asl: fine-tune from a trained run or checkpoint (same family, classes "
                                  "and --arch; a new schedule from --lr)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_train, parser=p)

    p = sub.add_parser("ensemble", help="combine trained runs of one family into one model that averages their "
                                        "logits (face: their unit embeddings); export and publish it like a run")
    p.add_argument("runs", nargs="+",
                   help="run folders (or their best.pt), two or more (one with --flip), same family and input")
    p.add_argument("--out", required=True, help="run folder for the ensemble (best.pt, metrics.json)")
    p.add_argument("--flip", action="store_true",
                   help="also average over the mirrored input (for runs trained with mirrored images: "
                        "the fer, tomato, asl and face recipes)")
    p.add_argument("--data", help="the folder the runs were trained on, if not the shared data set")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_ensemble)

    p = sub.add_parser("publish", help="write models/cards/<family>.md and copy small artifacts to models/zoo")
    p.add_argument("family", choices=list(FAMILIES))
    p.add_argument("--run", help="training run folder (default runs/<family>)")
    p.add_argument("--artifacts", default=str(DEFAULT_ARTIFACTS))
    p.add_argument("--zoo-formats", default="onnx-int8,tflite-int8,c,micropython",
                   help="formats copied to the zoo when at most 8 MB")
    p.add_argument("--command", help="the command line that produced the run, for the card")
    p.set_defaults(fn=cmd_publish)

    p = sub.add_parser("pipeline", help="the main job: export all families to all formats, verify, benchmark")
    p.add_argument("--families", default="all")
    p.add_argument("--formats", default="all")
    p.add_argument("--calib", type=int, default=200)
    _int8_target_args(p)
    _bench_args(p, with_filters=False)
    p.set_defaults(fn=cmd_pipeline)

    from edge.voice.cli import add_commands as voice_commands

    voice_commands(sub)
    from edge.attend.cli import add_commands as attend_commands
    from edge.demo_cli import add_commands as demo_commands
    from edge.trail.cli import add_commands as trail_commands

    trail_commands(sub)
    demo_commands(sub)
    attend_commands(sub)
    return ap


def _bench_args(p: argparse.ArgumentParser, with_filters: bool = True) -> None:
    if with_filters:
        p.add_argument("--families", default="all")
        p.add_argument("--formats", default="all", help="comma list or 'all' (torch included)")
        p.add_argument("--json", action="store_true", help="print the full result as JSON")
        p.add_argument("--with-zoo", action="store_true",
                       help="also measure the trained artifacts committed in models/zoo (format@zoo rows)")
    p.add_argument("--artifacts", default=str(DEFAULT_ARTIFACTS), help="folder of exported artifacts")
    p.add_argument("--threads", default="1,2", help="comma list of thread counts (default 1,2)")
    p.add_argument("--runs", type=int, default=50, help="timed runs per measurement (default 50)")
    p.add_argument("--repeats", type=int, default=3, help="interleaved repeats, each in a new process (default 3)")
    p.add_argument("--seconds", type=float, default=5.0, help="time cap per measurement (default 5)")
    p.add_argument("--out", default="bench_results", help="folder for JSON/Markdown/PNG (default bench_results)")
    p.add_argument("--name", default="bench", help="file stem (default bench)")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    verbose = "-v" in argv or "--verbose" in argv
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        rest = [x for x in argv if x not in ("-v", "--verbose")]
        if rest[:1] == ["bench"] and rest[1:2] and rest[1] in BENCH_SUBCOMMANDS:
            return BENCH_SUBCOMMANDS[rest[1]](rest[2:])
        ap = build_parser()
        a = ap.parse_args(argv)
        if not getattr(a, "fn", None):
            ap.print_help()
            return 2
        return a.fn(a)
    except EdgeError as exc:
        print(f"edge: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("edge: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # last resort: one line, the traceback only with -v
        if verbose:
            raise
        print(f"edge: error: {type(exc).__name__}: {exc} (run with -v for details)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
