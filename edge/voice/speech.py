"""Audio in, text out: WAV reading (any rate, resampled to 16 kHz), an energy gate, microphone capture with
sounddevice, and recognisers: offline pocketsphinx constrained by a grammar built from the ledger vocabulary
(English acoustic model, Indonesian words spelled into its phones), or Google's online recogniser via
SpeechRecognition when a network exists."""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import threading
import wave
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import EdgeError, MissingDependency
from edge.voice.parse import Vocab, load_vocab

RATE = 16000
FRAME_S = 0.03


class NoSpeech(EdgeError):
    """The audio holds no speech (silence, noise, or nothing at all)."""


# ------------------------------------------------------------------ audio
def read_wav(src: str | Path | bytes) -> tuple[np.ndarray, int]:
    """Mono float32 samples in [-1, 1] and the file's rate; clear errors for empty, truncated or non-PCM files."""
    name = "upload" if isinstance(src, bytes) else str(src)
    try:
        fh: Any = io.BytesIO(src) if isinstance(src, bytes) else open(src, "rb")  # noqa: SIM115
    except OSError as exc:
        raise EdgeError(f"cannot open audio {name}: {exc}") from None
    try:
        with fh, wave.open(fh, "rb") as w:
            ch, width, rate, n = w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()
            raw = w.readframes(n)
    except (wave.Error, EOFError) as exc:
        raise EdgeError(f"{name} is not a readable PCM WAV file ({exc})") from None
    if width not in (1, 2, 4):
        raise EdgeError(f"{name}: {8 * width}-bit samples are not supported (8, 16 or 32-bit PCM)")
    usable = len(raw) // (width * ch) * (width * ch)
    if usable == 0:
        raise NoSpeech(f"{name} holds no audio samples")
    dtype = {1: np.uint8, 2: np.int16, 4: np.int32}[width]
    x = np.frombuffer(raw[:usable], dtype=dtype).astype(np.float32)
    x = (x - 128.0) / 128.0 if width == 1 else x / float(2 ** (8 * width - 1))
    x = x.reshape(-1, ch).mean(axis=1)
    return x, rate


def resample(x: np.ndarray, rate: int, to: int = RATE) -> np.ndarray:
    """Linear-interpolation resampling with a moving-average anti-alias filter when going down."""
    if rate == to:
        return x.astype(np.float32)
    if rate <= 0:
        raise EdgeError(f"bad sample rate {rate}")
    if rate > to:
        k = int(np.ceil(rate / to))
        x = np.convolve(x, np.ones(k) / k, mode="same")
    n = int(round(len(x) * to / rate))
    t = np.linspace(0, len(x) - 1, n)
    return np.interp(t, np.arange(len(x)), x).astype(np.float32)


def voiced(x: np.ndarray, rate: int = RATE, ratio: float = 4.0, min_level: float = 0.01,
           min_speech_s: float = 0.15, pad_s: float = 0.2) -> np.ndarray:
    """The part of the signal between the first and last frame whose energy stands out from the noise floor.

    Raises NoSpeech for silence, steady noise, or a blip shorter than ``min_speech_s``.
    """
    hop = max(1, int(rate * FRAME_S))
    n = len(x) // hop
    if n == 0:
        raise NoSpeech("the recording is shorter than one 30 ms frame")
    rms = np.sqrt((x[: n * hop].reshape(n, hop) ** 2).mean(axis=1) + 1e-12)
    floor = float(np.percentile(rms, 10))
    thr = max(floor * ratio, min_level)
    on = np.flatnonzero(rms > thr)
    if len(on) * FRAME_S < min_speech_s:
        raise NoSpeech(f"no speech: {len(on)} of {n} frames above the gate (floor {floor:.4f}, gate {thr:.4f})")
    pad = int(pad_s / FRAME_S)
    a, b = max(0, on[0] - pad), min(n, on[-1] + 1 + pad)
    return x[a * hop : b * hop]


def to_pcm16(x: np.ndarray) -> bytes:
    return (np.clip(x, -1, 1) * 32767).astype("<i2").tobytes()


def record(seconds: float, device: int | str | None = None, rate: int = RATE) -> np.ndarray:
    """Capture from the microphone with sounddevice; a missing PortAudio or input device is a clear error."""
    try:
        import sounddevice as sd
    except ImportError:
        raise MissingDependency("sounddevice", "voice", "microphone capture") from None
    except OSError as exc:  # sounddevice imports, then fails to load libportaudio
        raise EdgeError(f"no audio: the PortAudio library could not be loaded ({exc}); install it "
                        "(Debian/Raspberry Pi OS: sudo apt install libportaudio2) or use --audio FILE.wav") from None
    try:
        sd.query_devices(device, kind="input")
        data = sd.rec(int(seconds * rate), samplerate=rate, channels=1, dtype="float32", device=device)
        sd.wait()
    except Exception as exc:  # PortAudioError, ValueError: no such device
        raise EdgeError(f"no audio input device ({exc}); plug in a microphone, pick one with --device, "
                        "or use --audio FILE.wav") from None
    return data[:, 0]


# ------------------------------------------------------------------ offline grammar + dictionary
_DIGRAPHS = [("ng", ["NG"]), ("ny", ["N", "Y"]), ("sy", ["SH"]), ("kh", ["HH"]), ("ai", ["AY"]), ("au", ["AW"]),
             ("oi", ["OY"])]
_LETTERS = {"a": ["AA"], "b": ["B"], "c": ["CH"], "d": ["D"], "e": ["EH"], "f": ["F"], "g": ["G"], "h": ["HH"],
            "i": ["IY"], "j": ["JH"], "k": ["K"], "l": ["L"], "m": ["M"], "n": ["N"], "o": ["OW"], "p": ["P"],
            "q": ["K"], "r": ["R"], "s": ["S"], "t": ["T"], "u": ["UW"], "v": ["F"], "w": ["W"], "x": ["K", "S"],
            "y": ["Y"], "z": ["Z"]}


def spell_indonesian(word: str, schwa: bool = False) -> list[str]:
    """Indonesian spelling -> CMU phones (the spelling is close to phonemic); ``schwa`` reads 'e' as AH."""
    w, i, out = word.lower(), 0, []
    while i < len(w):
        for dg, ph in _DIGRAPHS:
            if w.startswith(dg, i) and not (dg in ("ai", "au", "oi") and i + 2 < len(w)):
                out += ph
                i += 2
                break
        else:
            ch = w[i]
            if ch == "e" and schwa:
                out.append("AH")
            elif ch in _LETTERS:
                out += _LETTERS[ch]
            i += 1
    return out


def grammar_words(vocab: Vocab, language: str = "id") -> tuple[list[str], list[str]]:
    """(type words, every other word) the offline recogniser may hear in ``language`` ('id' or 'en')."""
    keep = (lambda w: w not in vocab.english) if language == "id" else (lambda w: w in vocab.english)
    types = sorted(vocab.grammar_types.get(language) or {w for w in vocab.types if w.isalpha() and keep(w)})
    others = set(vocab.grammar_items) | set(vocab.numbers) | set(vocab.scales) | set(vocab.multipliers)
    others |= set(vocab.currency) | set(vocab.cues) | set(vocab.fillers) | set(vocab.units) | set(vocab.half)
    others |= {"seratus", "seribu", "sejuta"}
    if language == "en":
        others |= set(vocab.grammar_items)
        return types, sorted(w for w in others if w.isalpha() and len(w) > 1 and (keep(w) or w in vocab.grammar_items))
    return types, sorted(w for w in others if w.isalpha() and len(w) > 1 and keep(w))


_ID_NUMBERS = """<digit> = satu | dua | tiga | empat | lima | enam | tujuh | delapan | sembilan;
<lt100> = <digit> puluh [<digit>] | sepuluh | sebelas | <digit> belas | <digit>;
<lt1000> = (<digit> ratus | seratus) [<lt100>] | <lt100>;
<thousands> = <lt1000> ribu | seribu;
<millions> = <lt1000> juta | sejuta;
<amount> = <millions> [<thousands>] [<lt1000>] | <thousands> [<lt1000>] | <lt1000>;
"""
_EN_NUMBERS = """<digit> = one | two | three | four | five | six | seven | eight | nine;
<teen> = ten | eleven | twelve | thirteen | fourteen | fifteen | sixteen | seventeen | eighteen | nineteen;
<tens> = twenty | thirty | forty | fifty | sixty | seventy | eighty | ninety;
<lt100> = <tens> [<digit>] | <teen> | <digit>;
<lt1000> = <digit> hundred [<lt100>] | <lt100>;
<thousands> = <lt1000> thousand;
<millions> = <lt1000> million;
<amount> = <millions> [<thousands>] [<lt1000>] | <thousands> [<lt1000>] | <lt1000>;
"""


def jsgf(vocab: Vocab, language: str = "id") -> str:
    """A sentence grammar: type word, optional filler, free item words (and counts), a spoken amount, currency."""
    types, words = grammar_words(vocab, language)
    numeric = set(vocab.numbers) | set(vocab.scales) | set(vocab.multipliers) | {"seratus", "seribu", "sejuta"}
    items = [w for w in words if w not in numeric and w not in vocab.currency]
    currency = sorted(w for w in vocab.currency if w.isalpha())
    return ("#JSGF V1.0;\ngrammar ledger;\n"
            "public <ledger> = <type> <item>* <amount> [<currency>] <item>*;\n"
            f"<type> = {' | '.join(types)};\n<item> = {' | '.join(items)} | <lt1000>;\n"
            f"<currency> = {' | '.join(currency)};\n" + (_ID_NUMBERS if language == "id" else _EN_NUMBERS))


def dictionary(words: list[str], cmudict: Path | None = None) -> str:
    """Pronunciations: the Indonesian spelling with 'e' as EH and as schwa, plus CMUdict's where it has the word."""
    english: dict[str, list[str]] = {}
    if cmudict and cmudict.exists():
        wanted = set(words)
        for line in cmudict.read_text(encoding="utf-8", errors="replace").splitlines():
            head, _, pron = line.partition(" ")
            base = head.split("(")[0]
            if base in wanted:
                english.setdefault(base, []).append(pron.strip())
    lines = []
    for w in sorted(set(words)):
        prons = {" ".join(spell_indonesian(w)), " ".join(spell_indonesian(w, schwa=True))}
        prons.update(english.get(w, []))
        for k, p in enumerate(sorted(prons)):
            if p:
                lines.append(f"{w} {p}" if k == 0 else f"{w}({k + 1}) {p}")
    return "\n".join(lines) + "\n"


class SphinxRecognizer:
    """pocketsphinx with the English acoustic model and a JSGF grammar over the ledger vocabulary."""

    name = "sphinx"

    # Beams: 1e-35 decodes a 3 s sentence in about 2 s on one x86 core; wider is slower and not better here.
    def __init__(self, vocab: Vocab | None = None, cache: Path | None = None, language: str = "id",
                 beam: float = 1e-35) -> None:
        try:
            from pocketsphinx import Decoder, get_model_path
        except ImportError:
            raise MissingDependency("pocketsphinx", "voice", "offline speech recognition") from None
        vocab = vocab or load_vocab()
        model = Path(get_model_path())
        gram = jsgf(vocab, language)
        types, words = grammar_words(vocab, language)
        dic = dictionary(types + words, model / "en-us" / "cmudict-en-us.dict")
        key = hashlib.sha256((gram + dic).encode()).hexdigest()[:12]
        cache = cache or Path(tempfile.gettempdir()) / "edge-voice"
        cache.mkdir(parents=True, exist_ok=True)
        gpath, dpath = cache / f"ledger-{key}.gram", cache / f"ledger-{key}.dict"
        if not gpath.exists():
            gpath.write_text(gram, encoding="utf-8")
            dpath.write_text(dic, encoding="utf-8")
        self.decoder = Decoder(hmm=str(model / "en-us" / "en-us"), dict=str(dpath), jsgf=str(gpath),
                               logfn=os.devnull, beam=beam, wbeam=beam * 1e10, pbeam=beam)
        self._lock = threading.Lock()  # one decoder: the server's threads take turns

    def transcribe(self, x: np.ndarray, rate: int = RATE) -> str:
        d = self.decoder
        with self._lock:
            d.start_utt()
            d.process_raw(to_pcm16(resample(x, rate)), full_utt=True)
            d.end_utt()
            hyp = d.hyp()
        if hyp is None or not hyp.hypstr.strip():
            raise NoSpeech("the recogniser heard nothing it could match")
        return hyp.hypstr


class GoogleRecognizer:
    """Google's free web recogniser through SpeechRecognition (needs a network)."""

    name = "google"

    def __init__(self, language: str = "id-ID") -> None:
        try:
            import speech_recognition as sr
        except ImportError:
            raise MissingDependency("SpeechRecognition", "voice", "the online recogniser") from None
        self.sr, self.language = sr, language

    def transcribe(self, x: np.ndarray, rate: int = RATE) -> str:
        audio = self.sr.AudioData(to_pcm16(resample(x, rate)), RATE, 2)
        try:
            return self.sr.Recognizer().recognize_google(audio, language=self.language)
        except self.sr.UnknownValueError:
            raise NoSpeech("the online recogniser heard no words") from None
        except self.sr.RequestError as exc:
            raise EdgeError(f"the online recogniser is unreachable ({exc}); use --engine sphinx offline") from None


def recognizer(engine: str = "sphinx", vocab: Vocab | None = None, language: str = "id") -> Any:
    if engine == "sphinx":
        return SphinxRecognizer(vocab, language=language)
    if engine == "google":
        return GoogleRecognizer("id-ID" if language == "id" else "en-US")
    raise EdgeError(f"unknown speech engine '{engine}' (sphinx, google)")


def transcribe_wav(src: str | Path | bytes, rec: Any) -> str:
    """WAV (any rate) -> gate -> recogniser text."""
    x, rate = read_wav(src)
    x = resample(x, rate)
    return rec.transcribe(voiced(x), RATE)
