"""Class names as other data sets write them -> the model's classes, for ``edge eval`` on a folder from elsewhere.

Names match across case, spaces, '-', '_' and '.' (``Half-Ripened`` is ``half_ripened``), and through the common
names and codes of other data sets: CK+ / RAF-DB / AffectNet (``anger``, ``happiness``, ``sadness``, ...), JAFFE and
KDEF codes (``AN``, ``HA``, ``AF``, ...), tomato ripeness stages (``unripe``, ``turning``, ``breaker``, ``ripe``, ...).
A flat folder's pictures are labelled by their file names (``A_test.jpg``, ``happy_001.png``)."""

from __future__ import annotations

import re

# the model's class (normalised) -> other names for it (normalised as below)
ALIASES: dict[str, tuple[str, ...]] = {
    "angry": ("anger", "an", "mad"),
    "disgust": ("disgusted", "disgusting", "di"),
    "fear": ("fearful", "afraid", "scared", "fe", "af"),
    "happy": ("happiness", "joy", "ha", "smile"),
    "sad": ("sadness", "sa"),
    "surprise": ("surprised", "suprise", "su"),
    "neutral": ("neutrality", "ne"),
    "green": ("unripe", "immature", "bgreen", "mentah"),
    "halfripened": ("halfripe", "semiripe", "partiallyripe", "turning", "breaker", "breakers", "pink", "lightred",
                    "bhalfripened", "setengahmatang"),
    "fullyripened": ("fullyripe", "ripe", "ripened", "red", "mature", "bfullyripened", "matang"),
}
NOISE_TOKENS = {"test", "train", "val", "img", "image", "photo", "pic", "copy"}


def normalise(name: str) -> str:
    """'Half-Ripened', 'half ripened', 'HALF_RIPENED' -> 'halfripened'."""
    return re.sub(r"[\s\-_.]+", "", name).lower()


def match_class(name: str, classes: list[str], mapping: dict[str, str] | None = None) -> tuple[int | None, str]:
    """The model's class index for a folder or file-name label, and how it matched ('name', 'alias', '--map');
    (None, '') where nothing matches."""
    index = {normalise(c): i for i, c in enumerate(classes)}
    mapped = (mapping or {}).get(name.lower())
    if mapped is not None:
        return index.get(normalise(mapped)), "--map"
    key = normalise(name)
    if key in index:
        return index[key], "name"
    for cls, others in ALIASES.items():
        if key in others and cls in index:
            return index[cls], "alias"
    return None, ""


def label_from_file_name(stem: str) -> str | None:
    """A flat folder's label from a file name: its words without trailing numbers and words like 'test'
    ('A_test' -> 'A', 'happy_001' -> 'happy', 'George_W_Bush_0001' -> 'George W Bush'); None if nothing is left."""
    words = [w for w in re.split(r"[\s\-_.]+", stem) if w]
    while words and (words[-1].isdigit() or words[-1].lower() in NOISE_TOKENS):
        words.pop()
    return " ".join(words) or None
