"""Every time a person reads, formatted in one place: UTC, marked `Z`.

Absolute times are ISO-8601 with milliseconds (`2026-12-01T03:37:42.123Z`), or the time of day alone
(`03:37:42.123Z`) where the date is already on the screen. Lengths of time read as a person says
them (`350 ms`, `1.5 s`, `3 min`); offsets on a timeline are signed (`+1.234 s`). A raw epoch never
reaches a person; a value that is no time prints as it is, marked.
"""
from __future__ import annotations

import time


def _parts(t: float) -> tuple[time.struct_time, int] | None:
    try:
        ms = int(round((t % 1) * 1000))
        whole = int(t)
        if ms == 1000:
            whole, ms = whole + 1, 0
        return time.gmtime(whole), ms
    except (OverflowError, OSError, ValueError, TypeError):
        return None


def stamp(t: float | None) -> str:
    """`2026-12-01T03:37:42.123Z` (tables, JSON, finding details)."""
    return _format(t, with_date=True)


def time_of_day(t: float | None) -> str:
    """`03:37:42.123Z` (terminal lines and sentences, where the day is known)."""
    return _format(t, with_date=False)


def _format(t: float | None, with_date: bool) -> str:
    if t is None:
        return "—"
    p = _parts(t)
    if p is None:
        return f"{t!r} (not a time)"
    g, ms = p
    day = f"{g.tm_year:04d}-{g.tm_mon:02d}-{g.tm_mday:02d}T" if with_date else ""
    return f"{day}{g.tm_hour:02d}:{g.tm_min:02d}:{g.tm_sec:02d}.{ms:03d}Z"


def duration(seconds: float) -> str:
    """A length of time as a person says it: 350 ms, 1.5 s, 3 min, 2.5 h, 4 d."""
    a = abs(seconds)
    if a < 1:
        return f"{a * 1000:.0f} ms"
    if a < 90:
        return f"{a:.1f} s".replace(".0 s", " s")
    if a < 5400:
        return f"{round(a / 60)} min"
    if a < 172800:
        return f"{a / 3600:.1f} h".replace(".0 h", " h")
    return f"{round(a / 86400)} d"


def offset(seconds: float) -> str:
    """A signed offset on a timeline: +1.234 s, +2 min 03.5 s, +1 h 04 min, +3 d 2 h."""
    sign = "+" if seconds >= 0 else "−"
    a = abs(seconds)
    if a < 60:
        return f"{sign}{a:.3f} s"
    if a < 3600:
        m, sec = divmod(a, 60)
        return f"{sign}{int(m)} min {sec:04.1f} s"
    h, rem = divmod(a, 3600)
    if h < 48:
        return f"{sign}{int(h)} h {int(rem // 60):02d} min"
    return f"{sign}{int(h // 24)} d {int(h % 24)} h"


# ---- times a person writes (`--since 7d`, `--older-than 30d`, `--until 2026-11-30`) ---------------

_UNITS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_age(text: str) -> float:
    """`30d`, `12h`, `90m`, `2w`, `45s` -> seconds; ValueError with one sentence otherwise."""
    t = text.strip().lower()
    num = t.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = t[len(num):] or "s"
    try:
        n = float(num)
    except ValueError:
        n = -1.0
    if unit not in _UNITS or not n >= 0 or n > 1e6:
        raise ValueError(f"{text!r} is no length of time: write it like 30d, 12h, 90m or 2w.")
    return n * _UNITS[unit]


def parse_when(text: str, now: float | None = None) -> float:
    """A moment: an age before now (`7d`) or a UTC date or time (`2026-11-30`, `2026-11-30T12:00Z`)."""
    from datetime import UTC, datetime

    t = text.strip()
    if t[:1].isdigit() and t.rstrip("abcdefghijklmnopqrstuvwxyz") != t and "-" not in t:
        return (time.time() if now is None else now) - parse_age(t)
    try:
        d = datetime.fromisoformat(t.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is no time: write an age like 7d or 12h, or a UTC date like 2026-11-30 "
                         "or 2026-11-30T12:00Z.") from None
    return (d if d.tzinfo else d.replace(tzinfo=UTC)).timestamp()
