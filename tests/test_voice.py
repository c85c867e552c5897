"""Voice ledger: parser (the paper's ten sentences, spoken numbers, traps), ledger, server, speech path, watch core."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys
import threading
import urllib.error
import urllib.request
import wave
from pathlib import Path

import numpy as np
import pytest

from edge.voice.ledger import Ledger, report_csv, totals
from edge.voice.parse import parse

ROOT = Path(__file__).resolve().parents[1]
WEAROS = ROOT / "wearos"

PAPER = [  # (sentence, amount, description)
    ("pengeluaran risol 5.000 rupiah", 5000, "risol"),
    ("pengeluaran mie ayam bakso 10.000 rupiah", 10000, "mie ayam bakso"),
    ("pengeluaran ayam geprek pedas level 5 12000 rupiah", 12000, "ayam geprek pedas level 5"),
    ("pengeluaran le minerale kecil untuk minum siang 6.000 rupiah", 6000, "le minerale kecil untuk minum siang"),
    ("pengeluaran beli cimory tiramisu di kantin kampus jimbaran 8000 rupiah", 8000,
     "cimory tiramisu di kantin kampus jimbaran"),
    ("pengeluaran beli dua indomilk uht 950 ml di indomaret harga diskon 33.800 rupiah", 33800,
     "dua indomilk uht 950 ml di indomaret harga diskon"),
    ("pengeluaran beli bakso aci dengan telur di pedagang pinggir jalan depan rumah 20000 rupiah", 20000,
     "bakso aci dengan telur di pedagang pinggir jalan depan rumah"),
    ("pengeluaran beli mie instan, telur satu sak, sayur bayam, kol, sawi, pokcoy, dan wortel 14000 rupiah", 14000,
     "mie instan, telur satu sak, sayur bayam, kol, sawi, pokcoy, dan wortel"),
    ("pengeluaran belanja cimory pizza, pangsit, mi kuah, air mineral di kantin unud jimbaran siang ini 17000 rupiah",
     17000, "cimory pizza, pangsit, mi kuah, air mineral di kantin unud jimbaran siang ini"),
    ("pengeluaran membeli lauk ayam, sayur, telor satu sak, rice bowl, dan buah pisang di pasar sengol batubulan "
     "150000 rupiah", 150000, "lauk ayam, sayur, telor satu sak, rice bowl, dan buah pisang di pasar sengol batubulan"),
]

SPOKEN = [  # (sentence, type, amount)
    ("pemasukan gaji 2 juta", "income", 2_000_000),
    ("pemasukan gaji dua juta lima ratus ribu rupiah", "income", 2_500_000),
    ("pengeluaran kopi Rp 20rb", "expense", 20_000),
    ("pengeluaran kopi Rp20.000,-", "expense", 20_000),
    ("pengeluaran parkir 5,000 rupiah", "expense", 5_000),
    ("pengeluaran nasi goreng lima belas ribu", "expense", 15_000),
    ("pengeluaran seratus lima puluh ribu rupiah untuk sewa", "expense", 150_000),
    ("terima bonus 1,5 juta", "income", 1_500_000),
    ("pemasukan jualan kue satu koma lima juta rupiah", "income", 1_500_000),
    ("pengeluaran sate dua belas ribu lima ratus rupiah", "expense", 12_500),
    ("pengeluaran kos sejuta", "expense", 1_000_000),
    ("beli teh seribu rupiah", "expense", 1_000),
    ("pengeluaran makan siang 20k", "expense", 20_000),
    ("pemasukan freelance setengah juta", "income", 500_000),
    ("spent 5,000 rupiah on coffee", "expense", 5_000),
    ("income salary twenty five thousand rupiah", "income", 25_000),
    ("pengeluaran bensin 2 juta 500 ribu rupiah", "expense", 2_500_000),
]


@pytest.mark.parametrize("text,amount,desc", PAPER)
def test_paper_sentences(text: str, amount: int, desc: str) -> None:
    r = parse(text)
    assert (r["type"], r["amount"], r["description"], r["needs_review"]) == ("expense", amount, desc, False)
    assert r["currency"] == "IDR" and r["confidence"] == 1.0


@pytest.mark.parametrize("text,kind,amount", SPOKEN)
def test_spoken_and_written_amounts(text: str, kind: str, amount: int) -> None:
    r = parse(text)
    assert (r["type"], r["amount"]) == (kind, amount), r


@pytest.mark.parametrize("text,reason", [
    ("pengeluaran beli bakso", "no amount"),
    ("pengeluaran bensin 5.000 rupiah dan parkir 2.000 rupiah", "two amounts"),
    ("pengeluaran pulsa 999999999999 rupiah", "out of range"),
    ("risol 5.000 rupiah", "no type keyword"),
    ("pengeluaran beli telur 3 sak", "no amount"),
])
def test_unparseable_sentences_need_review(text: str, reason: str) -> None:
    r = parse(text)
    assert r["needs_review"] and any(reason in x for x in r["reasons"]), r
    assert r["confidence"] < 0.5


def test_user_vocabulary_extends_the_bundled_one(tmp_path: Path) -> None:
    assert parse("setor tabungan 50.000 rupiah")["type"] is None
    extra = tmp_path / "vocab.json"
    extra.write_text(json.dumps({"types": {"income": ["setor"]}}), encoding="utf-8")
    r = parse("setor tabungan 50.000 rupiah", str(extra))
    assert (r["type"], r["amount"], r["description"]) == ("income", 50000, "tabungan")


def test_ledger_is_idempotent_and_report_keeps_unparsed(tmp_path: Path) -> None:
    led = Ledger(tmp_path / "l.sqlite")
    a, created = led.add(parse("pengeluaran risol 5.000 rupiah"), entry_id="e1", created_at="2026-11-02T08:00:00+07:00")
    assert created
    _, again = led.add(parse("pengeluaran risol 5.000 rupiah"), entry_id="e1")
    assert not again
    led.add(parse("pemasukan gaji 2 juta"), entry_id="e2", created_at="2026-11-03T08:00:00+07:00")
    led.add(parse("pengeluaran beli bakso"), entry_id="e3", created_at="2026-11-04T08:00:00+07:00")
    led.add(parse("pengeluaran kopi 9.000 rupiah"), entry_id="e4", created_at="2026-10-30T08:00:00+07:00")
    rows = led.entries("2026-11")
    assert [r["entry_id"] for r in rows] == ["e1", "e2", "e3"]
    t = totals(rows)
    assert t == {"expense": 5000, "income": 2_000_000, "needs_review": 1, "balance": 1_995_000}
    table = list(csv.reader(io.StringIO(report_csv(rows))))
    assert table[0][:4] == ["date", "type", "description", "amount"]
    assert ["2026-11-04", "expense", "bakso", "", "IDR", "needs_review"] == table[3][:6]
    assert ["total", "expense", "", "5000"] == table[-4][:4]


# ------------------------------------------------------------------ server
@pytest.fixture()
def server(tmp_path: Path):
    from werkzeug.serving import make_server

    from edge.voice.server import create_app
    from edge.voice.speech import SphinxRecognizer

    led = Ledger(tmp_path / "srv.sqlite")
    app = create_app(led, "s3cret", SphinxRecognizer(), max_body=256 * 1024)
    srv = make_server("127.0.0.1", 0, app, threaded=True)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    yield f"http://127.0.0.1:{srv.server_port}", led
    srv.shutdown()
    led.close()


def _post(url: str, body: bytes, token: str | None = "s3cret", ctype: str = "application/json") -> tuple[int, dict]:
    req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": ctype})
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def test_server_stores_once_and_refuses_bad_requests(server) -> None:
    base, led = server
    ok = json.dumps({"id": "w-1", "text": "pengeluaran risol 5.000 rupiah"}).encode()
    assert _post(base + "/api/entries", ok, token=None)[0] == 401
    assert _post(base + "/api/entries", ok, token="wrong")[0] == 401
    st, body = _post(base + "/api/entries", ok)
    assert st == 201 and body["entry"]["amount"] == 5000 and not body["duplicate"]
    st, body = _post(base + "/api/entries", ok)  # the watch re-sends after a lost answer
    assert st == 200 and body["duplicate"]
    assert len(led.entries()) == 1
    assert _post(base + "/api/entries", b"\xff\xfe{not utf8")[0] == 400
    assert _post(base + "/api/entries", b"{\"id\": \"x\", ")[0] == 400
    assert _post(base + "/api/entries", json.dumps({"id": "bad id!", "text": "x"}).encode())[0] == 400
    assert _post(base + "/api/entries", json.dumps({"id": "w-2", "text": ""}).encode())[0] == 400
    assert _post(base + "/api/entries", json.dumps(["a"]).encode())[0] == 400
    st, _ = _post(base + "/api/entries", json.dumps({"id": "w-3", "text": "x" * 300_000}).encode())
    assert st == 413
    st, body = _post(base + "/api/entries", json.dumps({"id": "w-4", "text": "pengeluaran beli bakso"}).encode())
    assert st == 201 and body["entry"]["status"] == "needs_review"
    assert len(led.entries()) == 2  # nothing stored by the refused requests
    req = urllib.request.Request(base + "/api/report.csv", headers={"Authorization": "Bearer s3cret"})
    with urllib.request.urlopen(req, timeout=10) as r:
        text = r.read().decode()
    assert "needs_review" in text and "risol" in text


# ------------------------------------------------------------------ speech
def _wav(path: Path, x: np.ndarray, rate: int) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.clip(x, -1, 1) * 32767).astype("<i2").tobytes())
    return path


def _say(text: str, path: Path, rate: int | None = None) -> Path:
    if not shutil.which("espeak-ng"):
        pytest.fail("espeak-ng is not installed (scripts/setup.sh installs it)")
    subprocess.run(["espeak-ng", "-v", "id", "-s", "150", "-w", str(path), text], check=True)
    if rate:
        x, r = __import__("edge.voice.speech", fromlist=["read_wav"]).read_wav(path)
        from edge.voice.speech import resample

        _wav(path, resample(x, r, rate), rate)
    return path


def test_bad_audio_gives_clear_errors(tmp_path: Path) -> None:
    from edge.errors import EdgeError
    from edge.voice.speech import NoSpeech, read_wav, voiced

    rng = np.random.default_rng(0)
    with pytest.raises(NoSpeech):
        voiced(read_wav(_wav(tmp_path / "silence.wav", np.zeros(16000), 16000))[0])
    with pytest.raises(NoSpeech):
        voiced(read_wav(_wav(tmp_path / "noise.wav", rng.normal(0, 0.05, 32000), 16000))[0])
    with pytest.raises(NoSpeech):
        read_wav(_wav(tmp_path / "empty.wav", np.zeros(0), 16000))
    (tmp_path / "junk.wav").write_bytes(b"RIFF\x00\x00")
    with pytest.raises(EdgeError, match="not a readable PCM WAV"):
        read_wav(tmp_path / "junk.wav")
    good = _say("pengeluaran risol lima ribu rupiah", tmp_path / "s.wav").read_bytes()
    (tmp_path / "cut.wav").write_bytes(good[: len(good) // 2 + 1])  # truncated mid-sample: still decodes the head
    x, rate = read_wav(tmp_path / "cut.wav")
    assert rate == 22050 and len(voiced(x, rate)) > 0


@pytest.mark.parametrize("rate", [22050, 16000, 44100])
def test_offline_recognizer_on_spoken_sentences(tmp_path: Path, rate: int) -> None:
    """espeak-ng's Indonesian voice -> pocketsphinx (grammar from the vocabulary) -> parser: type and amount."""
    from edge.voice.speech import SphinxRecognizer, transcribe_wav

    wav = _say("pengeluaran mie ayam bakso 10.000 rupiah", tmp_path / "u.wav", None if rate == 22050 else rate)
    text = transcribe_wav(wav, SphinxRecognizer())
    r = parse(text)
    assert r["type"] == "expense" and r["amount"] == 10000, text


def test_listen_without_audio_device_names_the_problem(tmp_path: Path) -> None:
    p = subprocess.run([sys.executable, "-m", "edge", "voice", "listen", "--seconds", "1"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2
    assert "audio" in p.stderr.lower() and "Traceback" not in p.stderr, p.stderr


def test_audio_upload_through_the_server(server, tmp_path: Path) -> None:
    base, led = server
    wav = _say("pengeluaran mie ayam bakso 10.000 rupiah", tmp_path / "a.wav").read_bytes()
    boundary = "xYz"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"id\"\r\n\r\na-1\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"audio\"; filename=\"a.wav\"\r\n"
            "Content-Type: audio/wav\r\n\r\n").encode() + wav + f"\r\n--{boundary}--\r\n".encode()
    st, out = _post(base + "/api/entries", body, ctype=f"multipart/form-data; boundary={boundary}")
    assert st == 201, out
    assert out["entry"]["source"] == "audio" and out["parsed"]["type"] == "expense"
    silence = io.BytesIO()
    _wav(tmp_path / "q.wav", np.zeros(8000), 16000)
    silence.write((tmp_path / "q.wav").read_bytes())
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"id\"\r\n\r\na-2\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"audio\"; filename=\"q.wav\"\r\n\r\n").encode() \
        + silence.getvalue() + f"\r\n--{boundary}--\r\n".encode()
    st, out = _post(base + "/api/entries", body, ctype=f"multipart/form-data; boundary={boundary}")
    assert st == 422 and "no speech" in out["error"]
    assert len(led.entries()) == 1


# ------------------------------------------------------------------ watch core (Java) + contract
@pytest.fixture(scope="module")
def java_core(tmp_path_factory) -> str:
    for tool in ("javac", "java"):
        if not shutil.which(tool):
            pytest.fail(f"{tool} is not installed (scripts/setup.sh installs default-jdk-headless)")
    junit = Path("/usr/share/java/junit4.jar")
    if not junit.exists():
        pytest.fail("junit4 is not installed (scripts/setup.sh installs Debian's junit4)")
    out = tmp_path_factory.mktemp("jcore")
    srcs = [str(p) for p in (WEAROS / "core" / "src").rglob("*.java")]
    subprocess.run(["javac", "-Xlint:all", "-Werror", "-d", str(out), "-cp", str(junit), *srcs], check=True)
    return f"{out}:{junit}:/usr/share/java/hamcrest-core.jar"


def test_java_core_unit_tests(java_core: str) -> None:
    p = subprocess.run(["java", "-cp", java_core, f"-Dcontract={WEAROS / 'contract' / 'examples.jsonl'}",
                        "org.junit.runner.JUnitCore", "id.edge.ledger.core.CoreTest"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and "OK (6 tests)" in p.stdout, p.stdout + p.stderr


def test_contract_java_core_to_python_server(java_core: str, server, tmp_path: Path) -> None:
    base, led = server
    queue = tmp_path / "queue.jsonl"
    cmd = ["java", "-cp", java_core, "id.edge.ledger.core.SyncMain", str(queue), base, "s3cret",
           str(WEAROS / "contract" / "examples.jsonl")]
    first = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=120).stdout)
    assert first == {"sent": 6, "rejected": 0, "left": 0, "status": 201, "stopped": False}
    second = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=120).stdout)
    assert second["sent"] == 6 and second["status"] == 200  # replayed: acknowledged, stored once
    expected = json.loads((WEAROS / "contract" / "expected.json").read_text(encoding="utf-8"))
    rows = {r["entry_id"]: r for r in led.entries()}
    assert len(rows) == 6
    for eid, want in expected.items():
        if eid.startswith("_"):
            continue
        got = rows[eid]
        assert {k: got[k] for k in want} == want, eid
    bad = subprocess.run(["java", "-cp", java_core, "id.edge.ledger.core.SyncMain", str(tmp_path / "q2"), base,
                          "wrong-token", str(WEAROS / "contract" / "examples.jsonl")],
                         capture_output=True, text=True, check=True, timeout=120)
    out = json.loads(bad.stdout)
    assert out["status"] == 401 and out["stopped"] and out["left"] == 6  # kept on the watch, nothing lost
