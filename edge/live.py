"""``edge live``: frames -> manifest prestep -> exported model -> smoothed label -> overlay window or JSON lines."""

from __future__ import annotations

import json
import time
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import cv2
import numpy as np

from edge.data import to_tensor
from edge.errors import EdgeError
from edge.faces import Box
from edge.prestep import Prestep, prestep_spec
from edge.runtime import Model, load

STAGES = ("capture", "prestep", "inference", "overlay")


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax; rows that already are probabilities are returned as they are."""
    x = np.asarray(logits, dtype=np.float64)
    if np.all(x >= 0) and np.allclose(x.sum(axis=-1), 1.0, atol=1e-3):
        return x
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@dataclass
class Classifier:
    """An exported classifier with its prestep: ``classify(frame)`` -> [(box, probabilities)]."""

    model: Model
    prestep: Prestep

    @classmethod
    def open(cls, artifact: Path | str, threads: int = 1, override: dict[str, Any] | None = None,
             detector: str = "auto") -> Classifier:
        model = load(artifact, threads=threads)
        if model.manifest.task != "classify" or model.manifest.input.layout != "NCHW":
            raise EdgeError(f"{Path(artifact).name} is not an image classifier ({model.manifest.task})")
        return cls(model, Prestep(prestep_spec(model.manifest, override), detector_spec=detector))

    @property
    def classes(self) -> list[str]:
        return self.model.classes

    def predict_crops(self, crops: list[np.ndarray]) -> np.ndarray:
        """Class probabilities, with the manifest's calibrated temperature when it has one."""
        out = self.model.predict(to_tensor(crops, self.model.manifest.input))
        t = self.model.manifest.temperature
        return softmax(np.asarray(out, np.float64) / t if t else out)

    def classify(self, frame: np.ndarray) -> list[tuple[Box, np.ndarray]]:
        found = self.prestep(frame)
        if not found:
            return []
        probs = self.predict_crops([c for c, _ in found])
        return [(box, p) for (_, box), p in zip(found, probs)]

    def top(self, probs: np.ndarray, k: int = 3) -> list[dict[str, Any]]:
        order = np.argsort(-probs)[:k]
        return [{"label": self.classes[i], "confidence": round(float(probs[i]), 4)} for i in order]


@dataclass
class Smoother:
    """Temporal smoothing so the label does not flicker: ``majority`` vote or ``ema`` of probabilities."""

    kind: str = "majority"  # majority | ema | none
    window: int = 8
    alpha: float = 0.3
    _votes: deque = field(default_factory=deque, repr=False)
    _ema: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in ("majority", "ema", "none"):
            raise EdgeError(f"unknown smoothing '{self.kind}': majority, ema or none")
        if self.window < 1:
            raise EdgeError("the smoothing window must be >= 1")

    def reset(self) -> None:
        self._votes.clear()
        self._ema = None

    def update(self, probs: np.ndarray) -> tuple[int, float]:
        """Feed one frame's probabilities; return the smoothed (class index, confidence)."""
        if self.kind == "ema":
            self._ema = probs if self._ema is None else self.alpha * probs + (1 - self.alpha) * self._ema
            i = int(np.argmax(self._ema))
            return i, float(self._ema[i])
        i = int(np.argmax(probs))
        if self.kind == "none":
            return i, float(probs[i])
        self._votes.append((i, float(probs[i])))
        while len(self._votes) > self.window:
            self._votes.popleft()
        winner, _ = Counter(v for v, _ in self._votes).most_common(1)[0]
        confs = [c for v, c in self._votes if v == winner]
        return winner, float(np.mean(confs))


@dataclass
class WordBuilder:
    """Fingerspelling: a letter joins the word once it is held ``hold_s`` seconds; change or drop it to repeat."""

    hold_s: float = 1.0
    min_conf: float = 0.6
    word: str = ""
    _current: str | None = None
    _since: float = 0.0
    _taken: bool = False

    def update(self, letter: str | None, conf: float, now: float) -> str:
        if letter is None or conf < self.min_conf:
            self._current, self._taken = None, False
            return self.word
        if letter != self._current:
            self._current, self._since, self._taken = letter, now, False
        elif not self._taken and now - self._since >= self.hold_s:
            self.word += letter
            self._taken = True
        return self.word


def draw_overlay(frame: np.ndarray, region: Box | None, box: Box | None, text: str, fps: float,
                 word: str | None = None) -> np.ndarray:
    """Guide box, detection box, label and FPS drawn on a BGR copy of the RGB frame."""
    img = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
    if region is not None and region != (0, 0, img.shape[1], img.shape[0]):
        x, y, w, h = region
        cv2.rectangle(img, (x, y), (x + w, y + h), (255, 200, 0), 2)
    if box is not None:
        x, y, w, h = box
        cv2.rectangle(img, (x, y), (x + w, y + h), (0, 255, 0), 2)
    cv2.putText(img, text, (10, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (0, 255, 0), 2)
    cv2.putText(img, f"{fps:.1f} FPS", (10, img.shape[0] - 12), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 255, 255), 2)
    if word is not None:
        cv2.putText(img, f"word: {word}", (10, 62), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2)
    return img


@dataclass
class LiveStats:
    frames: int = 0
    classified: int = 0
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    wall: float = 0.0

    def summary(self) -> dict[str, Any]:
        n = max(self.frames, 1)
        return {"frames": self.frames, "classified": self.classified,
                "fps": round(self.frames / self.wall, 2) if self.wall else 0.0,
                "ms_per_frame": {k: round(1000 * v / n, 3) for k, v in self.seconds.items()}}


def run_live(frames: Iterable[np.ndarray], clf: Classifier, smoother: Smoother, word: WordBuilder | None = None,
             show: bool = False, overlay: bool = True, max_frames: int | None = None,
             out: TextIO | None = None, stats: LiveStats | None = None) -> Iterator[dict[str, Any]]:
    """The live loop.  Yields one record per frame (and writes it as a JSON line to ``out`` when given)."""
    stats = stats if stats is not None else LiveStats()
    it = iter(frames)
    t_start = time.perf_counter()
    fps = 0.0
    while max_frames is None or stats.frames < max_frames:
        t0 = time.perf_counter()
        try:
            frame = next(it)
        except StopIteration:
            break
        t1 = time.perf_counter()
        found = clf.prestep(frame)
        t2 = time.perf_counter()
        rec: dict[str, Any] = {"frame": stats.frames, "label": None, "confidence": None, "box": None}
        if found:
            probs = clf.predict_crops([found[0][0]])[0]
            idx, conf = smoother.update(probs)
            raw = int(np.argmax(probs))
            rec.update(label=clf.classes[idx], confidence=round(conf, 4), raw_label=clf.classes[raw],
                       raw_confidence=round(float(probs[raw]), 4), box=list(found[0][1]))
            stats.classified += 1
        else:
            smoother.reset()
        t3 = time.perf_counter()
        if word is not None:
            rec["word"] = word.update(rec["label"], rec["confidence"] or 0.0, t3)
        if overlay or show:
            text = f"{rec['label']} {rec['confidence']:.2f}" if rec["label"] else "-"
            img = draw_overlay(frame, clf.prestep.region(frame.shape), tuple(rec["box"]) if rec["box"] else None,
                               text, fps, rec.get("word"))
            if show:
                cv2.imshow("edge live", img)
                if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
                    break
        t4 = time.perf_counter()
        for k, dt in zip(STAGES, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            stats.seconds[k] += dt
        stats.frames += 1
        stats.wall = t4 - t_start
        fps = stats.frames / stats.wall if stats.wall else 0.0
        rec["fps"] = round(fps, 2)
        if out is not None:
            out.write(json.dumps(rec) + "\n")
            out.flush()
        yield rec
    if show:
        cv2.destroyAllWindows()
