"""`edge deploy` against the real MicroPython unix port on a socat pty (mpremote with `resume`), and `edge flash`
without a chip: image checks, the esptool commands, and the error when nothing answers."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import run_edge
from edge.trail.deploy import DeployError, check_image, esptool_commands, plan


@pytest.fixture()
def board(tmp_path: Path):
    """The unix port as a 'board': its filesystem is a temp folder, its REPL a pty at tmp/tty."""
    socat = shutil.which("socat")
    mpy = shutil.which("micropython") or str(Path(sys.executable).parent / "micropython")
    if not socat or not Path(mpy).exists():
        pytest.fail("socat and the MicroPython unix port are needed (scripts/setup.sh installs them)")
    fs = tmp_path / "board"
    fs.mkdir()
    tty = tmp_path / "tty"
    proc = subprocess.Popen([socat, f"pty,link={tty},raw,echo=0", f"exec:{mpy},pty,raw,echo=0,stderr"], cwd=fs,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        if tty.exists():
            break
        time.sleep(0.05)
    yield {"tty": str(tty), "fs": fs}
    proc.terminate()
    proc.wait(10)


def test_deploy_copies_everything_and_check_reads_hashes_back(board: dict, tmp_path: Path) -> None:
    cfg = tmp_path / "my-station.json"
    cfg.write_text((Path(__file__).parents[1] / "firmware/esp32/config.json").read_text().replace(
        '"device_id": "', '"device_id": "x'))
    r = run_edge("deploy", "--port", board["tty"], "--config", str(cfg), "--resume", "--no-reset")
    assert r.returncode == 0, r.stderr
    assert "copied 9 files" in r.stdout and r.stdout.count("ok ") == 9
    fs = board["fs"]
    for f in ("main.py", "station.py", "sensors.py", "ringbuf.py", "transport.py", "config.json", "trail_tree.py",
              "lib/umqtt/simple.py", "lib/ssd1306.py"):
        assert (fs / f).is_file(), f
    assert (fs / "config.json").read_text() == cfg.read_text()  # the user's config, not the example
    # the copied firmware really runs on the board: import the tree and classify one reading
    out = subprocess.run([shutil.which("micropython") or str(Path(sys.executable).parent / "micropython"), "-c",
                          "import trail_tree; print(trail_tree.score([25.0, 70.0, 5.0]))"], cwd=fs,
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and out.stdout.startswith("[")
    # a file changed on the board: --check says which and fails
    (fs / "station.py").write_text("# tampered\n")
    (fs / "sensors.py").unlink()
    r = run_edge("deploy", "--port", board["tty"], "--config", str(cfg), "--resume", "--check")
    assert r.returncode != 0 and "2 file(s)" in r.stderr
    assert "differs  station.py" in r.stdout and "missing  sensors.py" in r.stdout


def test_deploy_errors_are_clear(tmp_path: Path) -> None:
    r = run_edge("deploy", "--port", str(tmp_path / "ttyUSB9"), "--resume")
    assert r.returncode != 0 and "no serial port" in r.stderr and "Traceback" not in r.stderr
    with pytest.raises(DeployError, match="missing"):
        plan(config=tmp_path / "nope.json")


def fake_image(path: Path, chip_id: int = 0, magic: int = 0xE9, size: int = 300_000) -> Path:
    head = bytearray(64)
    head[0], head[1] = magic, 4
    head[12:14] = chip_id.to_bytes(2, "little")
    path.write_bytes(bytes(head) + b"\xff" * (size - 64))
    return path


def test_flash_checks_the_image_before_touching_a_board(tmp_path: Path) -> None:
    good = fake_image(tmp_path / "ESP32_GENERIC-v1.24.bin")
    assert check_image(good)["segments"] == 4
    with pytest.raises(DeployError, match="not an ESP firmware image"):
        check_image(fake_image(tmp_path / "a.bin", magic=0x7F))
    with pytest.raises(DeployError, match="built for esp32s3"):
        check_image(fake_image(tmp_path / "s3.bin", chip_id=9))
    with pytest.raises(DeployError, match="writes the .bin"):
        check_image(fake_image(tmp_path / "x.uf2"))
    with pytest.raises(DeployError, match="0.5 to 4 MB"):
        check_image(fake_image(tmp_path / "tiny.bin", size=1000))
    with pytest.raises(DeployError, match="not found"):
        check_image(tmp_path / "none.bin")
    cmds = esptool_commands("/dev/ttyUSB0", good)
    assert [c[-1] for c in cmds][0] == "erase-flash"
    assert cmds[1][-4:] == ["write-flash", "-z", "0x1000", str(good)]
    assert esptool_commands("/dev/ttyUSB0", good, chip="esp32s3", erase=False)[0][-2] == "0x0"
    r = run_edge("flash", "--port", "/dev/ttyUSB0", "--firmware", str(good), "--dry-run")
    assert r.returncode == 0 and "would run:" in r.stdout and "write-flash -z 0x1000" in r.stdout


def test_flash_says_so_when_no_chip_answers(tmp_path: Path) -> None:
    good = fake_image(tmp_path / "fw.bin")
    r = run_edge("flash", "--port", str(tmp_path / "ttyUSB7"), "--firmware", str(good))
    assert r.returncode != 0 and "no serial port" in r.stderr
    # a pty with nothing behind it: esptool really tries, times out, and the message says what to do
    socat = subprocess.Popen(["socat", f"pty,link={tmp_path / 'tty'},raw,echo=0", "exec:cat,pty,raw,echo=0"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if (tmp_path / "tty").exists():
                break
            time.sleep(0.05)
        r = run_edge("flash", "--port", str(tmp_path / "tty"), "--firmware", str(good), "--baud", "115200",
                     timeout=300)
        assert r.returncode != 0 and "esptool erase-flash" in r.stderr and "Hold BOOT" in r.stderr
        assert "Traceback" not in r.stderr
    finally:
        socat.terminate()
        socat.wait(10)


def test_firmware_type_checks_against_the_esp32_stubs(tmp_path: Path) -> None:
    """mypy with micropython-esp32-stubs over the files as they lie on the board; a wrong call is caught."""
    from edge.trail.deploy import default_stubs

    stubs = default_stubs()
    assert (stubs / "machine.pyi").is_file(), f"no ESP32 stubs in {stubs}: run scripts/setup.sh"
    r = run_edge("deploy", "--typecheck")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "no errors" in r.stdout
    src = tmp_path / "fw"
    shutil.copytree(Path(__file__).parents[1] / "firmware" / "esp32", src)
    with open(src / "sensors.py", "a") as f:  # Pin.irq with a made-up keyword, time.ticks_ms with an argument
        f.write("\n\ndef _broken():\n    import machine\n\n    machine.Pin(35).irq(trigger=1, handlr=None)\n"
                "    return time.ticks_ms(5)\n")
    r = run_edge("deploy", "--typecheck", "--src", str(src))
    assert r.returncode != 0 and "2 type error(s)" in r.stderr, r.stdout + r.stderr
    assert "sensors.py" in r.stdout and "ticks_ms" in r.stdout
    r = run_edge("deploy", "--typecheck", "--stubs", str(tmp_path / "none"))
    assert r.returncode != 0 and "pip install --target" in r.stderr
