"""Which time parser reads what people type: chime's own against maintained parsers.

Run: .venv/bin/python bench/time_phrases.py [--jionlp-path DIR]

Reads the phrase table of tests/data/time_phrases.tsv (each phrase with the instant it means,
relative to a fixed "now") and prints, for each candidate, how many phrases it reads to exactly
that instant, which it misses, and what importing it costs (a fresh interpreter each time):

* ``chime``      — daemon.timeparse.parse_when (ISO, daemon.chinese_time, daemon.english_time,
  dateparser for other English);
* ``dateparser`` — dateparser.parse alone, preferring the future;
* ``jionlp+dateparser`` — jionlp.parse_time for Chinese phrases (the start of the span it
  returns), dateparser for the rest. jionlp is not a dependency (it pulls in jiojio and numpy):
  install it somewhere (``pip install --target DIR jionlp``) and pass ``--jionlp-path DIR``.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from datetime import time as dt_time
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
TABLE = ROOT / "tests" / "data" / "time_phrases.tsv"
ZONE = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 28, 10, 0, tzinfo=ZONE)
HAN = re.compile(r"[\u4e00-\u9fff]")
Parser = Callable[[str], "datetime | None"]


def table() -> list[tuple[str, datetime]]:
    rows = []
    for line in TABLE.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            phrase, instant = line.split("\t")[:2]
            rows.append((phrase, datetime.fromisoformat(instant)))
    return rows


def import_seconds(module: str, path: str | None) -> float:
    """Seconds to import ``module`` in a fresh interpreter (the best of three)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), path])))
    probe = (f"import time; t = time.perf_counter(); import {module}; "
             "print(time.perf_counter() - t)")
    runs = [float(subprocess.run([sys.executable, "-c", probe], env=env, check=True,
                                 capture_output=True, text=True).stdout.split()[-1])
            for _ in range(3)]
    return min(runs)


def chime() -> Parser:
    from daemon.errors import InputError
    from daemon.timeparse import parse_when

    def parse(text: str) -> datetime | None:
        try:
            return parse_when(text, NOW, ZONE)
        except InputError:
            return None

    return parse


def dateparser_alone() -> Parser:
    import dateparser

    settings = {"RELATIVE_BASE": NOW.replace(tzinfo=None), "PREFER_DATES_FROM": "future",
                "RETURN_AS_TIMEZONE_AWARE": False}

    def parse(text: str) -> datetime | None:
        try:
            found = dateparser.parse(text, settings=settings)  # type: ignore[arg-type]
        except (ValueError, OverflowError, TypeError):
            return None
        return found.replace(tzinfo=ZONE) if found else None

    return parse


def jionlp_and_dateparser(adapted: bool) -> Parser:
    """jionlp for Chinese; ``adapted`` adds the two conventions chime keeps (a whole day means
    its 09:00; an instant already passed moves a day ahead) as a thin layer of our own."""
    import jionlp

    english = dateparser_alone()
    base = time.mktime(NOW.replace(tzinfo=None).timetuple())  # jionlp reads local time

    def parse(text: str) -> datetime | None:
        if not HAN.search(text):
            return english(text)
        try:
            found = jionlp.parse_time(text, time_base=base)
        except Exception:  # jionlp raises ValueError and friends for what it cannot read
            return None
        if not found or len(found.get("time") or ()) < 2 or "inf" in found["time"]:
            return None  # nothing read, or an open span ("from now on")
        start, end = (datetime.fromisoformat(t).replace(tzinfo=ZONE) for t in found["time"][:2])
        if adapted and start.time() == dt_time(0) and end.time() == dt_time(23, 59, 59):
            start = start.replace(hour=9)
        if adapted and start <= NOW:
            start += timedelta(days=1)
        return start

    return parse


def score(name: str, parser: Parser, rows: list[tuple[str, datetime]]) -> None:
    missed = []
    for phrase, expected in rows:
        got = parser(phrase)
        if got != expected:
            missed.append(f"{phrase} → {got.strftime('%m-%d %H:%M') if got else 'refused'}")
    chinese = [phrase for phrase, _ in rows if HAN.search(phrase)]
    missed_cn = sum(1 for line in missed if HAN.search(line.split(" → ")[0]))
    print(f"{name}: {len(rows) - len(missed)}/{len(rows)} phrases "
          f"(Chinese {len(chinese) - missed_cn}/{len(chinese)}, "
          f"other {len(rows) - len(chinese) - len(missed) + missed_cn}/{len(rows) - len(chinese)})")
    for line in missed:
        print(f"    missed: {line}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jionlp-path", help="a folder where jionlp is installed")
    args = ap.parse_args()
    rows = table()
    print(f"{len(rows)} phrases, now = {NOW.isoformat()}")
    print(f"import: daemon.chinese_time {import_seconds('daemon.chinese_time', None):.3f} s, "
          f"dateparser {import_seconds('dateparser', None):.3f} s")
    score("chime", chime(), rows)
    score("dateparser", dateparser_alone(), rows)
    if args.jionlp_path:
        sys.path.insert(0, args.jionlp_path)
        print(f"import: jionlp {import_seconds('jionlp', args.jionlp_path):.3f} s")
        score("jionlp+dateparser", jionlp_and_dateparser(adapted=False), rows)
        score("jionlp+dateparser, adapted", jionlp_and_dateparser(adapted=True), rows)
    else:
        print("jionlp+dateparser: skipped (pip install --target DIR jionlp; --jionlp-path DIR)")


if __name__ == "__main__":
    main()
