"""Shared fixtures: small real exports made once per session (tiny input sizes keep CI fast)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from edge.bench.net import Mosquitto
from edge.data import data_root
from edge.errors import EdgeError

REPO = Path(__file__).resolve().parents[1]
HAS_DATA = (data_root() / "fer2013").is_dir()
FER_PARTS = ("train", "val", "test")


def fer_slice(root: Path, per_class: dict[str, int]) -> Path:
    """A data root for ``EDGE_DATA``: the shared one with fer2013 cut to ``per_class[part]`` evenly spaced faces of
    each class in each part (symlinks; every face in a class smaller than that), the other data sets linked whole.
    Tiny runs score on a few hundred faces instead of all 7,178 of val and test."""
    from edge.data import take_spread

    src = data_root()
    root.mkdir(parents=True, exist_ok=True)
    for d in src.iterdir():
        if d.name != "fer2013":
            (root / d.name).symlink_to(d.resolve())
    for part in FER_PARTS:
        for cdir in sorted(p for p in (src / "fer2013" / part).iterdir() if p.is_dir()):
            out = root / "fer2013" / part / cdir.name
            out.mkdir(parents=True)
            for f in take_spread(sorted(cdir.glob("*.png")), per_class[part]):
                (out / f.name).symlink_to(f.resolve())
    return root


def tomato_slice(root: Path, every: int) -> Path:
    """A data root for ``EDGE_DATA``: the shared one with the tomato manifest cut to every ``every``-th crop (the
    split hashes source photos, so each kept crop stays in its split), the other data sets linked whole."""
    src = data_root()
    root.mkdir(parents=True, exist_ok=True)
    for d in src.iterdir():
        if d.name != "tomato":
            (root / d.name).symlink_to(d.resolve())
    big = root / "tomato" / "laboro_big"
    big.mkdir(parents=True)
    for f in (src / "tomato" / "laboro_big").iterdir():
        if f.name != "manifest.csv":
            (big / f.name).symlink_to(f.resolve())
    head, *rows = (src / "tomato" / "laboro_big" / "manifest.csv").read_text().splitlines()
    (big / "manifest.csv").write_text("\n".join([head, *rows[::every]]) + "\n")
    return root


@pytest.fixture(scope="module")
def small_fer(tmp_path_factory):
    """EDGE_DATA with FER2013 cut to 40 training, 30 val and 30 test faces per class, for one module's tests."""
    root = fer_slice(tmp_path_factory.mktemp("data"), {"train": 40, "val": 30, "test": 30})
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EDGE_DATA", str(root))
        yield root


def run_edge(*args: str, cwd: Path | None = None, env: dict | None = None,
             timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the real ``edge`` CLI in a subprocess."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "edge", *args], cwd=cwd or REPO, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def fer_artifacts(tmp_path_factory) -> Path:
    """FER MobileNetV2 at 32 px exported to every image format (random init, real calibration data)."""
    from edge.export.pipeline import export_family
    from edge.families import get_family
    from edge.formats import parse_formats

    out = tmp_path_factory.mktemp("artifacts")
    results = export_family(get_family("fer"), parse_formats("all", include_torch=True), out, imgsz=32,
                            calib_n=24, verify_n=8)
    bad = [(r.format, r.reason) for r in results if r.status == "failed"]
    assert not bad, bad
    return out


@pytest.fixture(scope="session")
def trail_run(tmp_path_factory) -> Path:
    """The trail tree trained on the real weather data, exported to C and MicroPython."""
    from edge.export.pipeline import export_family
    from edge.families import get_family
    from edge.formats import parse_formats
    from edge.models.train_tree import train_trail

    root = tmp_path_factory.mktemp("trail")
    train_trail(out=root / "runs")
    results = export_family(get_family("trail"), parse_formats("c,micropython"), root / "artifacts",
                            checkpoint=root / "runs" / "best.pkl")
    assert all(r.status == "ok" for r in results), [(r.format, r.reason) for r in results]
    return root


class Broker(Mosquitto):
    """The shared loopback mosquitto (edge.bench.net); a broker that cannot run fails the test."""

    def __init__(self, workdir: Path) -> None:
        try:
            super().__init__(workdir)
        except EdgeError as exc:
            pytest.fail(str(exc))

    def start(self) -> Broker:
        try:
            super().start()
        except EdgeError as exc:
            pytest.fail(str(exc))
        return self


@pytest.fixture()
def broker(tmp_path: Path):
    b = Broker(tmp_path).start()
    yield b
    b.stop()
