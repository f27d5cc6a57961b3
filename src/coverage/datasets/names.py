"""Fictional Vietnamese place names built from Tày, Nùng, H'Mông, Dao and Kinh syllables.

The combinations are drawn at random, so a name may happen to exist somewhere in Vietnam, but
no generated place is a real one: every file says it is synthetic.
"""

from __future__ import annotations

import unicodedata

import numpy as np

__all__ = ["PROVINCE", "place_name", "unique_names"]

PROVINCE = "Tỉnh Mẫu Sơn (tổng hợp)"

# Tày/Nùng: nà (rice field), khuổi (stream), pác (mouth), bó (spring), phiêng (flat),
# lũng (valley), khau (mountain), cốc (foot of), nặm (water), pò (hill), hin (stone).
_TAY_1 = ("Nà", "Khuổi", "Pác", "Bó", "Phiêng", "Lũng", "Khau", "Cốc", "Nặm", "Pò", "Hin",
          "Thôm", "Làng", "Co")
_TAY_2 = ("Lốc", "Luông", "Ngòi", "Mạ", "Chang", "Tẩu", "Pàn", "Lình", "Cáy", "Vài", "Riềng",
          "Nưa", "Hẩu", "Coóc", "Sả", "Mòn", "Phầy", "Đon", "Pục", "Khiêng", "Lạn", "Thuồng",
          "Quang", "Mu", "Tàu", "Cải")
# H'Mông (in Vietnamese spelling)
_HMONG_1 = ("Sủng", "Phìn", "Tả", "Xà", "Lùng", "Séo", "Mã", "Sín", "Hồ", "Pả", "Chúng",
            "Lao", "Sà", "Má", "Vần")
_HMONG_2 = ("Chải", "Lủng", "Phìn", "Tỷ", "Páo", "Sán", "Dìn", "Mìn", "Thàng", "Chư", "Pờ",
            "Cáng", "Tủng", "Lử", "Sang", "Ván", "Chừ", "Hòa")
# Dao
_DAO_1 = ("Nậm", "Khuổi", "Tân", "Làng", "Phìn")
_DAO_2 = ("Đăm", "Mỏ", "Lầu", "Pầu", "Tiến", "Ngần", "Đạo", "Sảo")
# Kinh (lowland and town)
_KINH = ("Tân Sơn", "Bình Minh", "Hợp Thành", "Quyết Tiến", "Tân Lập", "Đoàn Kết", "Xuân Hòa",
         "Thống Nhất", "Minh Khai", "Trung Thành", "Hòa Bình", "Tiến Thắng")


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def place_name(rng: np.random.Generator, culture: str) -> str:
    """A two-syllable place name (without prefix) in the given culture.

    ``culture`` is one of ``"tay"``, ``"hmong"``, ``"dao"`` or ``"kinh"``.
    """
    if culture == "hmong":
        first, second = _HMONG_1, _HMONG_2
    elif culture == "dao":
        first, second = _DAO_1, _DAO_2
    elif culture == "kinh":
        return _nfc(str(rng.choice(_KINH)))
    else:
        first, second = _TAY_1, _TAY_2
    return _nfc(f"{rng.choice(first)} {rng.choice(second)}")


def unique_names(rng: np.random.Generator, cultures: list[str], prefixes: list[str],
                 taken: set[str] | None = None) -> list[str]:
    """Names ``"<prefix> <name>"``, unique among themselves and ``taken``."""
    taken = set() if taken is None else set(taken)
    out = []
    for culture, prefix in zip(cultures, prefixes, strict=True):
        for attempt in range(200):
            base = place_name(rng, culture if attempt < 100 else "tay")
            name = _nfc(f"{prefix} {base}".strip())
            if name not in taken:
                break
        taken.add(name)
        out.append(name)
    return out
