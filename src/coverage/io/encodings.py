"""Text encodings of Shapefiles without a ``.cpg``: UTF-8, cp1258 and the legacy Vietnamese ones.

Vietnamese offices still produce ``.dbf`` tables in Windows-1258 and in the pre-Unicode font
encodings TCVN3 (ABC, TCVN 5712:1993 VN3) and VNI-Windows. Without a ``.cpg`` GDAL reads them
as ISO-8859-1 and names come out as mojibake ("Hµ Néi" for "Hà Nội"). :func:`detect` tries
the candidates on the raw bytes and keeps the one whose words are Vietnamese syllables.

The TCVN3 table follows GNU libiconv's ``tcvn.h``; VNI-Windows writes a vowel as its base
letter followed by a mark byte, decoded here by rules from the published VNI layout.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

__all__ = ["CANDIDATES", "decode", "detect", "encode"]

#: Encodings tried, in order of preference when they score alike.
CANDIDATES = ("utf-8", "cp1258", "tcvn3", "vni")

# TCVN 5712 (VN3): bytes 0x01..0x17 and 0x80..0xFF; 0xB0..0xB4 are combining tone marks.
_TCVN_LOW = {
    0x01: 0x00DA, 0x02: 0x1EE4, 0x04: 0x1EEA, 0x05: 0x1EEC, 0x06: 0x1EEE, 0x11: 0x1EE8,
    0x12: 0x1EF0, 0x13: 0x1EF2, 0x14: 0x1EF6, 0x15: 0x1EF8, 0x16: 0x00DD, 0x17: 0x1EF4,
}
_TCVN_HIGH = [
    0x00C0, 0x1EA2, 0x00C3, 0x00C1, 0x1EA0, 0x1EB6, 0x1EAC, 0x00C8,
    0x1EBA, 0x1EBC, 0x00C9, 0x1EB8, 0x1EC6, 0x00CC, 0x1EC8, 0x0128,
    0x00CD, 0x1ECA, 0x00D2, 0x1ECE, 0x00D5, 0x00D3, 0x1ECC, 0x1ED8,
    0x1EDC, 0x1EDE, 0x1EE0, 0x1EDA, 0x1EE2, 0x00D9, 0x1EE6, 0x0168,
    0x00A0, 0x0102, 0x00C2, 0x00CA, 0x00D4, 0x01A0, 0x01AF, 0x0110,
    0x0103, 0x00E2, 0x00EA, 0x00F4, 0x01A1, 0x01B0, 0x0111, 0x1EB0,
    0x0300, 0x0309, 0x0303, 0x0301, 0x0323, 0x00E0, 0x1EA3, 0x00E3,
    0x00E1, 0x1EA1, 0x1EB2, 0x1EB1, 0x1EB3, 0x1EB5, 0x1EAF, 0x1EB4,
    0x1EAE, 0x1EA6, 0x1EA8, 0x1EAA, 0x1EA4, 0x1EC0, 0x1EB7, 0x1EA7,
    0x1EA9, 0x1EAB, 0x1EA5, 0x1EAD, 0x00E8, 0x1EC2, 0x1EBB, 0x1EBD,
    0x00E9, 0x1EB9, 0x1EC1, 0x1EC3, 0x1EC5, 0x1EBF, 0x1EC7, 0x00EC,
    0x1EC9, 0x1EC4, 0x1EBE, 0x1ED2, 0x0129, 0x00ED, 0x1ECB, 0x00F2,
    0x1ED4, 0x1ECF, 0x00F5, 0x00F3, 0x1ECD, 0x1ED3, 0x1ED5, 0x1ED7,
    0x1ED1, 0x1ED9, 0x1EDD, 0x1EDF, 0x1EE1, 0x1EDB, 0x1EE3, 0x00F9,
    0x1ED6, 0x1EE7, 0x0169, 0x00FA, 0x1EE5, 0x1EEB, 0x1EED, 0x1EEF,
    0x1EE9, 0x1EF1, 0x1EF3, 0x1EF7, 0x1EF9, 0x00FD, 0x1EF5, 0x1ED0,
]
_TCVN_TABLE = {b: chr(b) for b in range(256)}
_TCVN_TABLE.update({b: chr(u) for b, u in _TCVN_LOW.items()})
_TCVN_TABLE.update({0x80 + i: chr(u) for i, u in enumerate(_TCVN_HIGH)})

# VNI-Windows, read through Latin-1: tone marks after a vowel, and vowel-quality+tone marks.
_GRAVE, _ACUTE, _HOOK, _TILDE, _DOT = "\u0300", "\u0301", "\u0309", "\u0303", "\u0323"
_CIRC, _BREVE, _HORN = "\u0302", "\u0306", "\u031b"
_VNI_TONE = {"ù": _ACUTE, "ø": _GRAVE, "û": _HOOK, "õ": _TILDE, "ï": _DOT}
_VNI_CIRC = {"â": "", "á": _ACUTE, "à": _GRAVE, "å": _HOOK, "ã": _TILDE, "ä": _DOT}
_VNI_BREVE = {"ê": "", "é": _ACUTE, "è": _GRAVE, "ú": _HOOK, "ü": _TILDE, "ë": _DOT}
_VNI_SINGLE = {"ô": "o" + _HORN, "ö": "u" + _HORN, "í": "i" + _ACUTE, "ì": "i" + _GRAVE,
               "æ": "i" + _HOOK, "ó": "i" + _TILDE, "ò": "i" + _DOT, "î": "y" + _DOT,
               "ñ": "đ"}


def _vni_case_rules(upper: bool) -> list[tuple[str, str]]:
    """VNI letter sequences -> Unicode (NFD) of the lower- or upper-case letters."""
    def c(s: str) -> str:
        return s.upper() if upper else s

    rules: list[tuple[str, str]] = []
    for base in "aeo":
        for mark, tone in _VNI_CIRC.items():
            rules.append((c(base) + c(mark), c(base) + _CIRC + tone))
    for mark, tone in _VNI_BREVE.items():
        rules.append((c("a") + c(mark), c("a") + _BREVE + tone))
    for base in ("ô", "ö"):  # ơ, ư with a tone
        for mark, tone in _VNI_TONE.items():
            rules.append((c(base) + c(mark), c(_VNI_SINGLE[base]) + tone))
    for base in "aeouy":
        for mark, tone in _VNI_TONE.items():
            rules.append((c(base) + c(mark), c(base) + tone))
    for single, text in _VNI_SINGLE.items():
        rules.append((c(single), c(text)))
    return rules


def _vni_rules() -> list[tuple[str, str]]:
    """VNI letter sequences -> Unicode, the lower-case letters' first."""
    return _vni_case_rules(False) + _vni_case_rules(True)


_VNI_RULES = dict(_vni_rules())
_VNI_PATTERN = re.compile("|".join(re.escape(k) for k in
                                   sorted(_VNI_RULES, key=len, reverse=True)))


def decode(raw: bytes, encoding: str) -> str:
    """Decode bytes in ``encoding`` (a Python codec, ``tcvn3`` or ``vni``), NFC-normalised.

    Raises
    ------
    UnicodeDecodeError
        When the bytes are not valid in a strict codec (UTF-8, cp1258).
    """
    if encoding == "tcvn3":
        text = "".join(_TCVN_TABLE[b] for b in raw)
    elif encoding == "vni":
        text = _VNI_PATTERN.sub(lambda m: _VNI_RULES[m.group(0)], raw.decode("latin-1"))
    else:
        text = raw.decode(encoding)
    return unicodedata.normalize("NFC", text)


def _split_tone(ch: str) -> tuple[str, str]:
    """A letter as (letter without its tone, NFC; the tone mark or "")."""
    nfd = unicodedata.normalize("NFD", ch)
    tone = "".join(c for c in nfd if c in _TONES)
    base = unicodedata.normalize("NFC", "".join(c for c in nfd if c not in _TONES))
    return base, tone


def encode(text: str, encoding: str) -> bytes:
    """Encode text as a legacy Vietnamese file would hold it (the inverse of :func:`decode`).

    cp1258 keeps the tone marks as combining bytes after the letter, as Windows does.
    Used to build test files; characters the encoding lacks raise ``UnicodeEncodeError``.
    """
    text = unicodedata.normalize("NFC", text)
    if encoding == "utf-8":
        return text.encode("utf-8")
    if encoding == "cp1258":
        out = bytearray()
        for ch in text:
            try:
                out += ch.encode("cp1258")
            except UnicodeEncodeError:
                base, tone = _split_tone(ch)
                out += base.encode("cp1258") + tone.encode("cp1258")
        return bytes(out)
    if encoding == "tcvn3":
        table = {v: k for k, v in sorted(_TCVN_TABLE.items(), reverse=True)}
        out = bytearray()
        for ch in text:
            if ch in table:
                out.append(table[ch])
            else:
                base, tone = _split_tone(ch)
                out += bytes([table[base], table[tone]])
        return bytes(out)
    if encoding == "vni":
        inverse = {unicodedata.normalize("NFC", v): k for k, v in _VNI_RULES.items()}
        return "".join(inverse.get(ch, ch) for ch in text).encode("latin-1")
    return text.encode(encoding)


_ONSET = "(?:ngh|ng|nh|ch|gh|gi|kh|ph|qu|th|tr|[bcdđghklmnprstvx])?"
_NUCLEUS = "[aăâeêioôơuưy]{1,3}"
_CODA = "(?:ch|ng|nh|[cmnpt]|[iouy])?"
_SYLLABLE = re.compile(f"^{_ONSET}{_NUCLEUS}{_CODA}$")
_TONES = {_GRAVE, _ACUTE, _HOOK, _TILDE, _DOT}


def _syllable_ok(word: str) -> bool:
    """True when ``word`` (NFC) is a plausible Vietnamese syllable: one tone at most."""
    nfd = unicodedata.normalize("NFD", word.lower())
    if sum(ch in _TONES for ch in nfd) > 1:
        return False
    toneless = unicodedata.normalize("NFC", "".join(ch for ch in nfd if ch not in _TONES))
    return bool(_SYLLABLE.match(toneless))


def score(texts: Iterable[str]) -> float:
    """Share of non-ASCII words that are Vietnamese syllables (1.0 when none is non-ASCII)."""
    good = total = 0
    for text in texts:
        for word in re.split(r"[\s\-_,.;:/()0-9'\"]+", text):
            if not word or word.isascii():
                continue
            total += 1
            good += _syllable_ok(word)
    return good / total if total else 1.0


def detect(values: Iterable[bytes]) -> tuple[str, float]:
    r"""The encoding of raw text values and its score (share of plausible syllables).

    UTF-8 wins whenever every value decodes as UTF-8 (legacy single-byte Vietnamese text
    almost never does); otherwise cp1258, TCVN3 and VNI are scored and the best kept,
    earlier candidates winning ties.

    Examples
    --------
    >>> detect(["Hà Nội".encode("utf-8")])[0]
    'utf-8'
    >>> detect([b"H\xb5 N\xe9i"])[0]
    'tcvn3'
    """
    raw = [v for v in values if v]
    if not any(not v.isascii() for v in raw):
        return "utf-8", 1.0
    try:
        texts = [decode(v, "utf-8") for v in raw]
    except UnicodeDecodeError:
        pass
    else:
        return "utf-8", score(texts)
    best, best_score = "cp1258", -1.0
    for enc in CANDIDATES[1:]:
        try:
            s = score(decode(v, enc) for v in raw)
        except UnicodeDecodeError:
            continue
        if s > best_score:
            best, best_score = enc, s
    return best, best_score
