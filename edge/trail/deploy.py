"""`edge flash` (esptool: erase + write a MicroPython image) and `edge deploy` (mpremote: copy the firmware, its
config and the generated tree; ``--check`` reads back sha256 of every file).

MicroPython images for the ESP32 DevKit V1 come from https://micropython.org/download/ESP32_GENERIC/ (the .bin,
not .uf2/.elf); they are written at 0x1000 on the ESP32 and at 0x0 on the S2/S3/C3/C6.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from edge.errors import EdgeError, MissingDependency

FIRMWARE_DIR = Path(__file__).resolve().parents[2] / "firmware" / "esp32"
DOWNLOAD = "https://micropython.org/download/ESP32_GENERIC/"
# esptool chip name -> (flash offset of the MicroPython .bin, chip id in the image's extended header)
CHIPS = {"esp32": (0x1000, 0x0000), "esp32s2": (0x1000, 0x0002), "esp32s3": (0x0, 0x0009),
         "esp32c3": (0x0, 0x0005), "esp32c6": (0x0, 0x000D)}
IMAGE_MAGIC = 0xE9
# what goes on the board: (local path under the firmware folder, path on the board)
FILES = [("main.py", "main.py"), ("station.py", "station.py"), ("sensors.py", "sensors.py"),
         ("ringbuf.py", "ringbuf.py"), ("transport.py", "transport.py"), ("config.json", "config.json"),
         ("lib/umqtt/simple.py", "lib/umqtt/simple.py"), ("lib/ssd1306.py", "lib/ssd1306.py")]


class DeployError(EdgeError):
    """Flashing or deploying failed; the message says why and what to try."""


# ------------------------------------------------------------------ flash
def check_image(path: Path, chip: str = "esp32") -> dict[str, int]:
    """Refuse files that are not an ESP firmware image for ``chip`` before esptool touches the board."""
    if chip not in CHIPS:
        raise DeployError(f"unknown chip '{chip}': {', '.join(CHIPS)}")
    if not path.is_file():
        raise DeployError(f"firmware image not found: {path} (download the .bin from {DOWNLOAD})")
    if path.suffix.lower() in (".uf2", ".elf", ".hex", ".zip"):
        raise DeployError(f"{path.name} is a {path.suffix} file: esptool writes the .bin image ({DOWNLOAD})")
    data = path.read_bytes()[:64]
    size = path.stat().st_size
    if len(data) < 24 or data[0] != IMAGE_MAGIC:
        raise DeployError(f"{path.name} is not an ESP firmware image (first byte 0x{data[0] if data else 0:02x}, "
                          f"expected 0x{IMAGE_MAGIC:02x}); get the .bin from {DOWNLOAD}")
    segments = data[1]
    if not 1 <= segments <= 16:
        raise DeployError(f"{path.name}: {segments} segments in the image header; the file looks damaged")
    if not 64 * 1024 <= size <= 16 * 1024 * 1024:
        raise DeployError(f"{path.name} is {size} bytes; a MicroPython image is 0.5 to 4 MB")
    chip_id = int.from_bytes(data[12:14], "little")
    if chip_id != CHIPS[chip][1]:
        names = [k for k, v in CHIPS.items() if v[1] == chip_id]
        raise DeployError(f"{path.name} is built for {names[0] if names else f'chip id {chip_id}'}, not {chip}")
    return {"size": size, "segments": segments, "chip_id": chip_id}


def esptool_commands(port: str, image: Path, chip: str = "esp32", baud: int = 460800,
                     erase: bool = True) -> list[list[str]]:
    """The esptool invocations `edge flash` runs: erase-flash, then write-flash at the chip's offset."""
    base = [sys.executable, "-m", "esptool", "--chip", chip, "--port", port, "--baud", str(baud),
            "--connect-attempts", "3"]
    offset = CHIPS[chip][0]
    cmds = [[*base, "erase-flash"]] if erase else []
    cmds.append([*base, "write-flash", "-z", f"0x{offset:x}", str(image)])
    return cmds


def flash(port: str, image: Path, chip: str = "esp32", baud: int = 460800, erase: bool = True,
          dry_run: bool = False) -> list[list[str]]:
    check_image(image, chip)
    cmds = esptool_commands(port, image, chip, baud, erase)
    if dry_run:
        return cmds
    if not Path(port).exists() and not port.startswith(("rfc2217://", "socket://")):
        raise DeployError(f"no serial port {port} (plug the board in; ls /dev/ttyUSB* /dev/ttyACM*)")
    for cmd in cmds:
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode != 0:
            out = (p.stdout + p.stderr).strip().splitlines()
            hint = next((ln.strip() for ln in reversed(out) if "error" in ln.lower() or "failed" in ln.lower()),
                        out[-1] if out else "esptool failed")
            step = "erase-flash" if "erase-flash" in cmd else "write-flash"
            raise DeployError(f"esptool {step} on {port} failed: {hint.rstrip('.')}. Is it an ESP32? "
                              "Hold BOOT while it connects if it does not answer.")
    return cmds


# ----------------------------------------------------------------- deploy
@dataclass
class Plan:
    files: list[tuple[Path, str]]  # (local file, path on the board)


def plan(src: Path = FIRMWARE_DIR, config: Path | None = None, tree: Path | None = None) -> Plan:
    """The files to copy: the firmware, the (user's) config and the generated tree as trail_tree.py."""
    if not src.is_dir():
        raise DeployError(f"firmware folder not found: {src} (use --src)")
    files = [(src / local, remote) for local, remote in FILES]
    if config is not None:
        files = [(config if remote == "config.json" else p, remote) for p, remote in files]
    if tree is None:
        from edge.zoo import zoo_dir

        tree = zoo_dir() / "trail" / "trail.py"
    files.append((tree, "trail_tree.py"))
    missing = [str(p) for p, _ in files if not p.is_file()]
    if missing:
        raise DeployError(f"missing: {', '.join(missing)}")
    return Plan(files)


STUBS_PACKAGE = "micropython-esp32-stubs==1.29.0.post1"


def default_stubs() -> Path:
    """Where scripts/setup.sh puts the ESP32 stubs: beside the environment, not in it (they shadow the stdlib)."""
    return Path(os.environ.get("EDGE_ESP32_STUBS", Path(sys.prefix) / "esp32-stubs"))


def typecheck(p: Plan, stubs: Path | None = None) -> list[str]:
    """mypy over the files as they will lie on the board, against the ESP32 MicroPython stubs; the error lines."""
    stubs = stubs or default_stubs()
    if not (stubs / "machine.pyi").is_file() or not (stubs / "stdlib").is_dir():
        raise DeployError(f"no ESP32 stubs in {stubs}: pip install --target {stubs} '{STUBS_PACKAGE}' "
                          "(scripts/setup.sh does)")
    if importlib.util.find_spec("mypy") is None:
        raise MissingDependency("mypy", "test", "type-checking the firmware")
    with tempfile.TemporaryDirectory() as tmp:
        board = Path(tmp)
        for local, remote in p.files:
            (board / remote).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(local, board / remote)
        targets = [r for _, r in p.files if r.endswith(".py") and not r.startswith("lib/umqtt/")]
        env = {**os.environ, "MYPYPATH": f"{board / 'lib'}{os.pathsep}{stubs}"}
        r = subprocess.run([sys.executable, "-m", "mypy", "--config-file", str(FIRMWARE_DIR / "mypy.ini"),
                            "--custom-typeshed-dir", str(stubs), "--cache-dir", str(board / ".mypy_cache"),
                            *targets], cwd=board, env=env, capture_output=True, text=True, timeout=600)
    out = r.stdout
    if r.returncode not in (0, 1):
        raise DeployError(f"mypy could not run: {(r.stderr or out).strip()[-300:]}")
    return [line for line in out.splitlines() if ": error:" in line]


def _mpremote(port: str, args: list[str], resume: bool) -> str:
    exe = shutil.which("mpremote")
    cmd = [exe] if exe else [sys.executable, "-m", "mpremote"]
    cmd += ["connect", port, *(["resume"] if resume else []), *args]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        out = (p.stdout + p.stderr).strip().splitlines()
        raise DeployError(f"mpremote on {port} failed: {out[-1] if out else p.returncode} "
                          "(is the board connected and not busy in another terminal?)")
    return p.stdout


def deploy(port: str, p: Plan, reset: bool = True, resume: bool = False) -> list[str]:
    """Copy every file in one mpremote session (folders made first), then reset the board."""
    if not Path(port).exists() and not port.startswith(("rfc2217://", "socket://")) and port != "auto":
        raise DeployError(f"no serial port {port} (plug the board in; ls /dev/ttyUSB* /dev/ttyACM*)")
    # every folder on the way to a file, parents first: lib, lib/umqtt
    dirs = sorted({"/".join(Path(r).parts[:i]) for _, r in p.files for i in range(1, len(Path(r).parts))}, key=len)
    mk = f"import os\nfor d in {dirs!r}:\n    try:\n        os.mkdir(d)\n    except OSError:\n        pass\n"
    args = ["exec", mk]
    for local, remote in p.files:
        args += ["+", "fs", "cp", str(local), f":{remote}"]
    if reset:
        args += ["+", "reset"]
    _mpremote(port, args, resume)
    return [r for _, r in p.files]


def check(port: str, p: Plan, resume: bool = False) -> list[dict[str, str]]:
    """sha256 of each file on the board next to the local one; status ok / differs / missing."""
    code = ("import hashlib, binascii\n"
            f"for f in {[r for _, r in p.files]!r}:\n"
            "    try:\n"
            "        h = hashlib.sha256()\n"
            "        with open(f, 'rb') as fh:\n"
            "            while True:\n"
            "                b = fh.read(512)\n"
            "                if not b:\n"
            "                    break\n"
            "                h.update(b)\n"
            "        print(f, binascii.hexlify(h.digest()).decode())\n"
            "    except OSError:\n"
            "        print(f, 'missing')\n")
    out = _mpremote(port, ["exec", code], resume)
    remote = dict(line.split(" ", 1) for line in out.strip().splitlines() if " " in line)
    rows = []
    for local, r in p.files:
        want = hashlib.sha256(local.read_bytes()).hexdigest()
        got = remote.get(r, "missing").strip()
        rows.append({"file": r, "status": "ok" if got == want else ("missing" if got == "missing" else "differs"),
                     "local": want[:16], "board": got[:16]})
    return rows
