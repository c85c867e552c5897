"""Parse a spoken ledger sentence into {type, description, amount, currency, confidence}.

Keywords (types and their synonyms, currency words, number words, units) are found in one pass of a
pyahocorasick automaton built from ``vocab.json``; amounts are read as people say them and as
speech-to-text writes them ("5.000", "5,000", "Rp 20rb", "lima ribu", "1,5 juta", "dua juta lima ratus ribu").
A number followed by a unit ("950 ml", "satu sak") or after "level" is not an amount.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from edge.errors import EdgeError, MissingDependency

VOCAB_FILE = Path(__file__).with_name("vocab.json")
_TOKEN = re.compile(r"\d+(?:[.,]\d+)*|[a-z]+|%", re.IGNORECASE)
# "se" + scale words are one token that means 1 x scale.
_SE_WORDS = {"seratus": "ratus", "seribu": "ribu", "sejuta": "juta"}
_PREFIX_UNITS = {"level", "lvl", "nomor", "no", "lantai", "kelas", "ukuran", "size", "number"}


@dataclass(frozen=True)
class Vocab:
    """Keyword tables, from vocab.json (optionally merged with a user's file)."""

    types: dict[str, str]  # keyword -> expense|income
    priority: tuple[str, ...]
    currency: dict[str, str]  # word -> ISO code
    currency_prefix: frozenset[str]
    cues: frozenset[str]
    fillers: frozenset[str]
    units: frozenset[str]
    numbers: dict[str, float]
    scales: dict[str, Any]
    multipliers: dict[str, int]
    half: frozenset[str]
    decimal: frozenset[str]
    max_amount: int
    grammar_items: tuple[str, ...] = field(default=())
    english: frozenset[str] = field(default=frozenset())
    grammar_types: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def keywords(self) -> dict[str, str]:
        """Every phrase the automaton looks for -> its kind."""
        kinds: dict[str, str] = {}
        tables = [("unit", self.units), ("filler", self.fillers), ("cue", self.cues),
                  ("number", self.numbers), ("scale", self.scales), ("mult", self.multipliers),
                  ("half", self.half), ("decimal", self.decimal), ("currency", self.currency), ("type", self.types)]
        for kind, words in tables:  # later tables win: a type keyword is a type even if it is also a filler
            for w in words:
                kinds[w] = kind
        for w in _SE_WORDS:
            kinds[w] = "number"
        return kinds


def load_vocab(extra: Path | None = None) -> Vocab:
    """The bundled vocabulary, with a user's JSON file (same keys) merged over it."""
    raw = json.loads(VOCAB_FILE.read_text(encoding="utf-8"))
    if extra is not None:
        try:
            user = json.loads(Path(extra).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise EdgeError(f"cannot read vocabulary {extra}: {exc}") from None
        for key, val in user.items():
            if isinstance(val, dict) and isinstance(raw.get(key), dict):
                for k2, v2 in val.items():
                    if isinstance(v2, list) and isinstance(raw[key].get(k2), list):
                        raw[key][k2] = raw[key][k2] + v2
                    else:
                        raw[key][k2] = v2
            elif isinstance(val, list) and isinstance(raw.get(key), list):
                raw[key] = raw[key] + val
            else:
                raw[key] = val
    low = lambda xs: [x.lower() for x in xs]  # noqa: E731
    return Vocab(
        types={w.lower(): t for t, ws in raw["types"].items() for w in ws},
        priority=tuple(low(raw.get("type_priority", []))),
        currency={w.lower(): code for code, ws in raw["currency"].items() for w in ws},
        currency_prefix=frozenset(low(raw.get("currency_prefix", []))),
        cues=frozenset(low(raw.get("amount_cues", []))),
        fillers=frozenset(low(raw.get("leading_fillers", []))),
        units=frozenset(low(raw.get("units", []))),
        numbers={k.lower(): float(v) for k, v in raw["number_words"].items()},
        scales={k.lower(): v for k, v in raw["number_scales"].items()},
        multipliers={k.lower(): int(v) for k, v in raw["number_multipliers"].items()},
        half=frozenset(low(raw.get("half", []))),
        decimal=frozenset(low(raw.get("decimal_words", []))),
        max_amount=int(raw.get("max_amount", 10**10)),
        grammar_items=tuple(low(raw.get("grammar_items", []))),
        english=frozenset(low(raw.get("english_words", []))),
        grammar_types={k: tuple(low(v)) for k, v in raw.get("grammar_types", {}).items()},
    )


def build_automaton(vocab: Vocab) -> Any:
    """A pyahocorasick automaton over every vocabulary phrase (value: (phrase, kind))."""
    try:
        import ahocorasick
    except ImportError:
        raise MissingDependency("pyahocorasick", "voice", "the voice-ledger parser") from None
    auto = ahocorasick.Automaton()
    for phrase, kind in vocab.keywords().items():
        auto.add_word(phrase, (phrase, kind))
    auto.make_automaton()
    return auto


def find_keywords(auto: Any, text: str) -> list[tuple[int, int, str, str]]:
    """Whole-word matches (start, end_exclusive, phrase, kind), longest first where they overlap."""
    low = text.lower()
    n = len(low)
    hits = []
    for end, (phrase, kind) in auto.iter(low):
        start = end - len(phrase) + 1
        # whole words; a letter keyword may touch digits ('20rb', 'Rp20.000')
        before = low[start - 1] if start > 0 else " "
        after = low[end + 1] if end + 1 < n else " "
        if before.isalpha() or after.isalpha() or (phrase[0].isdigit() and before.isdigit()):
            continue
        hits.append((start, end + 1, phrase, kind))
    hits.sort(key=lambda h: (h[0], -(h[1] - h[0])))
    out, covered = [], -1
    for h in hits:
        if h[0] >= covered:
            out.append(h)
            covered = h[1]
    return out


def digits_value(tok: str) -> float | None:
    """'5.000' and '5,000' -> 5000; '1,5' and '2.5' -> decimals; '1.234,5' -> 1234.5."""
    if re.fullmatch(r"\d+", tok):
        return float(tok)
    if re.fullmatch(r"\d{1,3}(\.\d{3})+", tok):
        return float(tok.replace(".", ""))
    if re.fullmatch(r"\d{1,3}(,\d{3})+", tok):
        return float(tok.replace(",", ""))
    if re.fullmatch(r"\d+[.,]\d{1,2}", tok):
        return float(tok.replace(",", "."))
    if re.fullmatch(r"\d{1,3}(\.\d{3})+,\d{1,2}", tok):
        return float(tok.replace(".", "").replace(",", "."))
    if re.fullmatch(r"\d{1,3}(,\d{3})+\.\d{1,2}", tok):
        return float(tok.replace(",", ""))
    return None


@dataclass
class Token:
    text: str
    start: int
    end: int
    kind: str = "word"  # word | digits | number | scale | mult | half | decimal | currency | type | unit | cue | filler


@dataclass
class Amount:
    value: float
    first: int  # token index
    last: int
    has_multiplier: bool
    strength: str = "weak"  # strong | weak | excluded
    why: str = ""


def tokenize(text: str, vocab: Vocab, auto: Any) -> list[Token]:
    toks = [Token(m.group(0), m.start(), m.end()) for m in _TOKEN.finditer(text)]
    kw = find_keywords(auto, text)
    j = 0
    out: list[Token] = []
    for t in toks:
        if t.text[0].isdigit():
            t.kind = "digits" if digits_value(t.text) is not None else "word"
            out.append(t)
            continue
        while j < len(kw) and kw[j][1] <= t.start:
            j += 1
        if j < len(kw) and kw[j][0] <= t.start < kw[j][1]:
            start, end, phrase, kind = kw[j]
            t.kind = kind
            if " " in phrase:  # a multi-word phrase becomes one token; the words it swallows are dropped below
                t.end, t.text = end, text[start:end]
        out.append(t)
    # drop tokens swallowed by a multi-word phrase
    dedup: list[Token] = []
    for t in out:
        if dedup and t.start < dedup[-1].end:
            continue
        dedup.append(t)
    return dedup


def _numbers(toks: list[Token], vocab: Vocab) -> list[Amount]:
    """Group number-ish tokens into values: 'dua juta lima ratus ribu' -> 2500000, '1,5 juta' -> 1500000."""
    found: list[Amount] = []
    i = 0
    numeric = {"digits", "number", "scale", "mult", "half", "decimal"}
    while i < len(toks):
        t = toks[i]
        if t.kind not in ("digits", "number", "half"):
            i += 1
            continue
        total, current, last, has_mult = 0.0, 0.0, 0.0, False
        decimal_next = False
        first = i
        last_atom_digits = False
        j = i
        while j < len(toks) and toks[j].kind in numeric:
            tj = toks[j]
            word = tj.text.lower()
            if tj.kind == "digits":
                if last_atom_digits:  # '5 12000': two numbers side by side
                    break
                v = digits_value(tj.text) or 0.0
                current += v
                last = v
                last_atom_digits = True
                # a unit glued to digits ('20rb', '950ml') arrives as the next token
            elif tj.kind == "number":
                if word in _SE_WORDS:
                    mult = vocab.multipliers.get(_SE_WORDS[word])
                    if mult:
                        total += 1 * mult
                        has_mult = True
                        current, last = 0.0, 0.0
                    else:  # seratus
                        current += 100
                        last = 100
                elif decimal_next:
                    current += vocab.numbers[word] / 10
                    decimal_next = False
                else:
                    v = vocab.numbers[word]
                    current += v
                    last = v
                last_atom_digits = False
            elif tj.kind == "scale":
                s = vocab.scales[word]
                if s == "teen":
                    current += 10
                    last += 10
                else:
                    base = last if last else 1.0
                    current = current - last + base * float(s)
                    last = base * float(s)
                last_atom_digits = False
            elif tj.kind == "mult":
                total += (current if current else 1.0) * vocab.multipliers[word]
                current, last, has_mult = 0.0, 0.0, True
                last_atom_digits = False
            elif tj.kind == "half":
                current += 0.5
                last_atom_digits = False
            elif tj.kind == "decimal":
                decimal_next = True
            j += 1
        value = total + current
        found.append(Amount(value=value, first=first, last=j - 1, has_multiplier=has_mult))
        i = j
    return found


def _grade(a: Amount, toks: list[Token], vocab: Vocab) -> None:
    nxt = toks[a.last + 1] if a.last + 1 < len(toks) else None
    prev = toks[a.first - 1] if a.first > 0 else None
    if nxt is not None and (nxt.kind == "unit" or nxt.text.lower() in vocab.units) and not a.has_multiplier:
        a.strength, a.why = "excluded", f"followed by the unit '{nxt.text}'"
    elif prev is not None and prev.text.lower() in _PREFIX_UNITS:
        a.strength, a.why = "excluded", f"after '{prev.text}'"
    elif nxt is not None and nxt.kind == "currency":
        a.strength, a.why = "strong", f"followed by '{nxt.text}'"
    elif prev is not None and (prev.kind == "currency" or prev.text.lower() in vocab.currency_prefix):
        a.strength, a.why = "strong", f"after '{prev.text}'"
    elif a.has_multiplier:
        a.strength, a.why = "strong", "has a multiplier (ribu/juta/rb/k)"
    elif prev is not None and prev.kind == "cue":
        a.strength, a.why = "strong", f"after '{prev.text}'"
    elif a.value >= 100:
        a.strength, a.why = "weak", "a bare number"
    else:
        a.strength, a.why = "excluded", "a small bare number (a count, not money)"


def _type_of(toks: list[Token], vocab: Vocab) -> tuple[str | None, Token | None, bool]:
    typed = [t for t in toks if t.kind == "type"]
    if not typed:
        return None, None, False
    for t in typed:
        if t.text.lower() in vocab.priority:
            return vocab.types[t.text.lower()], t, True
    return vocab.types[typed[0].text.lower()], typed[0], False


@dataclass
class _Parser:
    vocab: Vocab
    auto: Any

    def __call__(self, text: str) -> dict[str, Any]:
        if not isinstance(text, str):
            raise EdgeError("parse() takes text")
        text = " ".join(text.split())
        toks = tokenize(text, self.vocab, self.auto)
        amounts = _numbers(toks, self.vocab)
        for a in amounts:
            _grade(a, toks, self.vocab)
        strong = [a for a in amounts if a.strength == "strong"]
        weak = [a for a in amounts if a.strength == "weak"]
        reasons: list[str] = []
        confidence = 1.0
        chosen: Amount | None = None
        if len(strong) == 1:
            chosen = strong[0]
        elif len(strong) > 1:
            if len({a.value for a in strong}) == 1:
                chosen = strong[-1]
            else:
                reasons.append("two amounts: " + ", ".join(f"{a.value:g}" for a in strong))
                confidence *= 0.3
        elif len(weak) == 1:
            chosen = weak[0]
            confidence *= 0.6
            reasons.append(f"amount {weak[0].value:g} has no currency word")
        elif len(weak) > 1:
            reasons.append("several bare numbers: " + ", ".join(f"{a.value:g}" for a in weak))
            confidence *= 0.3
        else:
            reasons.append("no amount")
            confidence *= 0.2
        amount: int | None = None
        if chosen is not None:
            amount = int(round(chosen.value))
            if amount <= 0 or amount > self.vocab.max_amount:
                reasons.append(f"amount {amount} is out of range (1..{self.vocab.max_amount})")
                confidence *= 0.3
                amount = None
        kind, type_tok, explicit = _type_of(toks, self.vocab)
        if kind is None:
            reasons.append("no type keyword (pengeluaran/pemasukan/...)")
            confidence *= 0.3
        elif not explicit:
            confidence *= 0.9
        description = self._description(text, toks, chosen, type_tok)
        currency = "IDR"
        if chosen is not None:
            near = [toks[k] for k in (chosen.first - 1, chosen.last + 1) if 0 <= k < len(toks)]
            codes = [self.vocab.currency[t.text.lower()] for t in near if t.kind == "currency"]
            currency = codes[0] if codes else "IDR"
        return {
            "type": kind,
            "description": description,
            "amount": amount,
            "currency": currency,
            "confidence": round(confidence, 3),
            "needs_review": bool(reasons),
            "reasons": reasons,
            "text": text,
        }

    def _description(self, text: str, toks: list[Token], chosen: Amount | None, type_tok: Token | None) -> str:
        skip: set[int] = set()
        if chosen is not None:
            skip.update(range(chosen.first, chosen.last + 1))
            for k in (chosen.first - 1, chosen.last + 1):
                if 0 <= k < len(toks) and toks[k].kind == "currency":
                    skip.add(k)
        # each piece before/after the amount loses its leading type keyword and fillers ('pengeluaran beli ...')
        pieces: list[list[int]] = [[]]
        for idx in range(len(toks)):
            if idx in skip:
                if pieces[-1]:
                    pieces.append([])
                continue
            pieces[-1].append(idx)
        words = []
        for piece in pieces:
            while piece and (toks[piece[0]] is type_tok or toks[piece[0]].text.lower() in self.vocab.fillers
                             or toks[piece[0]].text.lower() in self.vocab.priority):
                piece = piece[1:]
            if piece:
                end = toks[piece[-1]].end
                while end < len(text) and text[end] in "\"')]":  # a closing quote or bracket stays
                    end += 1
                words.append(text[toks[piece[0]].start:end])
        return re.sub(r"\s+", " ", " ".join(words)).strip(" ,.;:-")


@lru_cache(maxsize=4)
def get_parser(vocab_path: str | None = None) -> _Parser:
    vocab = load_vocab(Path(vocab_path) if vocab_path else None)
    return _Parser(vocab, build_automaton(vocab))


def parse(text: str, vocab_path: str | None = None) -> dict[str, Any]:
    """Parse one sentence; see the module docstring."""
    return get_parser(vocab_path)(text)
