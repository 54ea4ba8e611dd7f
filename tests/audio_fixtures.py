"""A sound card for tests that have none: ALSA's ``file`` plugin in a test HOME.

``alsa_home(home, sink)`` writes ``~/.asoundrc`` so that the default ALSA device writes every
played sample into ``sink`` (raw PCM) and throws the sound away; ``aplay`` run with
``HOME=home`` then "plays" into that file.
"""

from __future__ import annotations

import shutil
import wave
from pathlib import Path

ASOUNDRC = """pcm.!default {{
  type file
  slave.pcm "null"
  file "{sink}"
  format "raw"
}}
"""


def require(program: str, package: str) -> str:
    """The path of ``program``, or a failing assertion that says how .ci/run installs it."""
    exe = shutil.which(program)
    if exe is None:
        raise AssertionError(
            f"{program} is not installed; .ci/run installs it (Debian package {package!r})"
        )
    return exe


def alsa_home(home: Path, sink: Path) -> Path:
    """Make ``home`` a HOME whose default ALSA device writes into ``sink``."""
    home.mkdir(parents=True, exist_ok=True)
    (home / ".asoundrc").write_text(ASOUNDRC.format(sink=sink))
    return home


def wav_frames(path: Path) -> bytes:
    """The raw sample bytes of a WAV file."""
    with wave.open(str(path), "rb") as w:
        return w.readframes(w.getnframes())


def write_tone(path: Path, seconds: float = 0.2, rate: int = 22050, amplitude: int = 8000) -> Path:
    """A short 16-bit mono square-wave WAV (a stand-in chime sound)."""
    frames = bytearray()
    period = rate // 440
    for i in range(int(seconds * rate)):
        value = amplitude if (i % period) < period // 2 else -amplitude
        frames += value.to_bytes(2, "little", signed=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(bytes(frames))
    return path
