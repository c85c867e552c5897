"""Voice-ledger benchmark: parse time vs sentence length (automaton vs a Boyer-Moore baseline, one run), and the
offline speech path on espeak-ng audio (word accuracy, field accuracy after parsing). JSON + Markdown."""

from __future__ import annotations

import json
import random
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from edge.errors import EdgeError
from edge.voice.parse import get_parser

PAPER_SENTENCES = [
    "pengeluaran risol 5.000 rupiah",
    "pengeluaran mie ayam bakso 10.000 rupiah",
    "pengeluaran ayam geprek pedas level 5 12000 rupiah",
    "pengeluaran le minerale kecil untuk minum siang 6.000 rupiah",
    "pengeluaran beli cimory tiramisu di kantin kampus jimbaran 8000 rupiah",
    "pengeluaran beli dua indomilk uht 950 ml di indomaret harga diskon 33.800 rupiah",
    "pengeluaran beli bakso aci dengan telur di pedagang pinggir jalan depan rumah 20000 rupiah",
    "pengeluaran beli mie instan, telur satu sak, sayur bayam, kol, sawi, pokcoy, dan wortel 14000 rupiah",
    "pengeluaran belanja cimory pizza, pangsit, mi kuah, air mineral di kantin unud jimbaran siang ini 17000 rupiah",
    "pengeluaran membeli lauk ayam, sayur, telor satu sak, rice bowl, dan buah pisang di pasar sengol batubulan "
    "150000 rupiah",
]

_DIGITS = ["", "satu", "dua", "tiga", "empat", "lima", "enam", "tujuh", "delapan", "sembilan"]


def say_id(n: int) -> str:
    """An integer in Indonesian words: 12500 -> 'dua belas ribu lima ratus'."""
    if n == 0:
        return "nol"

    def below_1000(x: int) -> list[str]:
        out: list[str] = []
        h, rest = divmod(x, 100)
        if h:
            out += ["seratus"] if h == 1 else [_DIGITS[h], "ratus"]
        t, u = divmod(rest, 10)
        if t == 1:
            out += ["sepuluh"] if u == 0 else ["sebelas"] if u == 1 else [_DIGITS[u], "belas"]
        else:
            if t:
                out += [_DIGITS[t], "puluh"]
            if u:
                out.append(_DIGITS[u])
        return out

    words: list[str] = []
    for scale, name, se in ((10**9, "miliar", "semiliar"), (10**6, "juta", "sejuta"), (1000, "ribu", "seribu")):
        q, n = divmod(n, scale)
        if q:
            words += [se] if q == 1 and name == "ribu" else below_1000(q) + [name]
    words += below_1000(n)
    return " ".join(words)


# ------------------------------------------------------------------ parse timing
def boyer_moore_horspool(text: str, pat: str) -> list[int]:
    """All start positions of pat in text (the paper's keyword search, as a baseline)."""
    m, n = len(pat), len(text)
    if m == 0 or m > n:
        return []
    shift = {c: m - 1 - i for i, c in enumerate(pat[:-1])}
    out, i = [], 0
    while i <= n - m:
        j = m - 1
        while j >= 0 and text[i + j] == pat[j]:
            j -= 1
        if j < 0:
            out.append(i)
        i += shift.get(text[i + m - 1], m)
    return out


def _timeit(fn: Any, arg: str, min_s: float = 0.2) -> float:
    """Median per-call microseconds over 5 batches sized to ~min_s/5 each."""
    n, t0 = 1, time.perf_counter()
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            fn(arg)
        dt = time.perf_counter() - t0
        if dt > min_s / 5:
            break
        n *= 2
    runs = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(n):
            fn(arg)
        runs.append((time.perf_counter() - t0) / n * 1e6)
    return statistics.median(runs)


def parse_timing(sentences: list[str]) -> list[dict[str, Any]]:
    p = get_parser()
    words = list(p.vocab.keywords())
    auto = p.auto

    def bm_all(text: str) -> int:
        low = text.lower()
        return sum(len(boyer_moore_horspool(low, w)) for w in words)

    def ac_all(text: str) -> int:
        return sum(1 for _ in auto.iter(text.lower()))

    rows = []
    for s in sorted(sentences, key=len):
        rows.append({"chars": len(s), "sentence": s, "automaton_match_us": round(_timeit(ac_all, s), 2),
                     "boyer_moore_match_us": round(_timeit(bm_all, s), 2),
                     "full_parse_us": round(_timeit(p, s), 2), "keywords": len(words)})
    return rows


# ------------------------------------------------------------------ speech path
ITEMS = ["risol", "mie ayam", "bakso", "nasi goreng", "kopi", "teh es", "sate ayam", "soto", "martabak", "roti",
         "bensin", "pulsa", "parkir", "buku", "sabun", "beras", "gula", "minyak", "tiket", "obat", "jus jeruk",
         "tahu tempe", "sayur bayam", "buah pisang", "air mineral", "susu", "gorengan", "ojek", "listrik", "kos"]
INCOME_ITEMS = ["gaji", "bonus", "jualan kue", "proyek freelance", "les privat", "kiriman orang tua", "hadiah",
                "sewa kos"]


def generated_set(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """n utterances with varied items and amounts, spoken forms spelled out (what espeak-ng says)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        income = rng.random() < 0.25
        item = rng.choice(INCOME_ITEMS if income else ITEMS)
        amount = rng.choice([rng.randrange(1, 100) * 500, rng.randrange(1, 50) * 10000, rng.randrange(1, 10) * 10**6])
        kind = "pemasukan" if income else "pengeluaran"
        out.append({"spoken": f"{kind} {item} {say_id(amount)} rupiah", "type": "income" if income else "expense",
                    "amount": amount, "description": item})
    return out


def paper_set() -> list[dict[str, Any]]:
    import re

    p = get_parser()
    out = []
    for s in PAPER_SENTENCES:
        ref = p(s)
        spoken = re.sub(r"\d+(?:\.\d{3})*", lambda m: say_id(int(m.group(0).replace(".", ""))), s).replace(",", "")
        out.append({"spoken": spoken, "type": ref["type"], "amount": ref["amount"],
                    "description": re.sub(r"\d+", lambda m: say_id(int(m.group(0))), ref["description"])
                    .replace(",", "")})
    return out


def word_errors(ref: str, hyp: str) -> tuple[int, int]:
    """(edit distance in words, reference length)."""
    r, h = ref.split(), hyp.split()
    d = list(range(len(h) + 1))
    for i in range(1, len(r) + 1):
        prev, d[0] = d[0], i
        for j in range(1, len(h) + 1):
            cur = d[j]
            d[j] = min(d[j] + 1, d[j - 1] + 1, prev + (r[i - 1] != h[j - 1]))
            prev = cur
    return d[len(h)], len(r)


def speech_path(utts: list[dict[str, Any]], progress: bool = True) -> dict[str, Any]:
    from edge.voice.speech import NoSpeech, SphinxRecognizer, transcribe_wav

    if not shutil.which("espeak-ng"):
        raise EdgeError("the speech benchmark needs espeak-ng (apt install espeak-ng)")
    rec = SphinxRecognizer()
    p = get_parser()
    rows = []
    iterator: Any = utts
    if progress:
        from tqdm import tqdm

        iterator = tqdm(utts, desc="speech", unit="utt")
    with tempfile.TemporaryDirectory() as tmp:
        for k, u in enumerate(iterator):
            wav = Path(tmp) / f"{k}.wav"
            subprocess.run(["espeak-ng", "-v", "id", "-w", str(wav), u["spoken"]], check=True)
            t0 = time.perf_counter()
            try:
                text = transcribe_wav(wav, rec)
            except NoSpeech:
                text = ""
            dt = time.perf_counter() - t0
            parsed = p(text) if text else {"type": None, "amount": None, "description": ""}
            errs, n = word_errors(u["spoken"], text)
            rows.append({**u, "heard": text, "word_errors": errs, "words": n, "decode_s": round(dt, 3),
                         "type_ok": parsed["type"] == u["type"], "amount_ok": parsed["amount"] == u["amount"],
                         "description_ok": parsed["description"] == u["description"]})
    n = len(rows)
    return {
        "utterances": n,
        "word_accuracy": round(1 - sum(r["word_errors"] for r in rows) / max(1, sum(r["words"] for r in rows)), 4),
        "type_accuracy": round(sum(r["type_ok"] for r in rows) / n, 4),
        "amount_exact": round(sum(r["amount_ok"] for r in rows) / n, 4),
        "description_exact": round(sum(r["description_ok"] for r in rows) / n, 4),
        "all_fields": round(sum(r["type_ok"] and r["amount_ok"] and r["description_ok"] for r in rows) / n, 4),
        "decode_s_median": round(statistics.median(r["decode_s"] for r in rows), 3),
        "rows": rows,
    }


def run(out: Path, n_generated: int = 100, speech: bool = True) -> dict[str, Any]:
    from edge.bench.fingerprint import fingerprint

    result: dict[str, Any] = {"device": fingerprint(), "parse": parse_timing(PAPER_SENTENCES)}
    if speech:
        result["speech_paper"] = speech_path(paper_set())
        result["speech_generated"] = speech_path(generated_set(n_generated))
    out.mkdir(parents=True, exist_ok=True)
    (out / "voice.json").write_text(json.dumps(result, indent=2, ensure_ascii=False), encoding="utf-8")
    (out / "voice.md").write_text(markdown(result), encoding="utf-8")
    return result


def markdown(r: dict[str, Any]) -> str:
    lines = ["# Voice ledger benchmark", "", f"Device: {r['device'].get('cpu', '?')}", "",
             "## Parse time per sentence (µs, median of 5 batches; same run)", "",
             "| chars | automaton match | Boyer-Moore match (all keywords) | BM / automaton | full parse |",
             "|---:|---:|---:|---:|---:|"]
    for row in r["parse"]:
        ratio = row["boyer_moore_match_us"] / max(row["automaton_match_us"], 1e-9)
        lines.append(f"| {row['chars']} | {row['automaton_match_us']:.2f} | {row['boyer_moore_match_us']:.1f} | "
                     f"{ratio:.0f}x | {row['full_parse_us']:.1f} |")
    for key, title in (("speech_paper", "the paper's ten sentences"), ("speech_generated", "generated set")):
        s = r.get(key)
        if not s:
            continue
        lines += ["", f"## Offline speech path on espeak-ng audio: {title} ({s['utterances']} utterances)", "",
                  "| word accuracy | type | amount exact | description exact | all fields | decode s (median) |",
                  "|---:|---:|---:|---:|---:|---:|",
                  f"| {s['word_accuracy']:.3f} | {s['type_accuracy']:.3f} | {s['amount_exact']:.3f} | "
                  f"{s['description_exact']:.3f} | {s['all_fields']:.3f} | {s['decode_s_median']:.2f} |"]
    return "\n".join(lines) + "\n"
