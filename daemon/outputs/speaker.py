"""Speaker output: offline text-to-speech into a WAV file, then a player.

Engines: ``espeak-ng`` (default voice ``cmn-latn-pinyin``: Debian's plain ``cmn`` voice reads
hanzi as pinyin with tone *digits* spoken as English numbers, "ni three hao three") and
``piper`` when ``[speaker] piper_model`` names a downloaded ``.onnx`` voice (the ``piper``
executable, else ``python -m piper``; nothing is ever downloaded here). Players: ``aplay``,
``paplay`` or ``pw-play``; the volume is applied to the samples, so it works with all three.

No shell anywhere: every command is an argv list and the text goes on stdin, so no reminder
text can run a command. Both exit codes are checked and every step has a timeout. During
``[speaker] quiet_hours`` the speaker stays silent and says so in its detail (not a failure).
"""

from __future__ import annotations

import array
import importlib.util
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import wave
from datetime import datetime, time
from pathlib import Path
from typing import TYPE_CHECKING

from daemon.clock import Clock, SystemClock
from daemon.config_checks import require
from daemon.config_values import format_hours
from daemon.errors import OutputError
from daemon.outputs.base import Actions, Reminder

if TYPE_CHECKING:
    from daemon.config import Settings

log = logging.getLogger("daemon.outputs.speaker")

PACKAGES = {"espeak-ng": "espeak-ng", "aplay": "alsa-utils", "paplay": "pulseaudio-utils",
            "pw-play": "pipewire-bin"}


def is_quiet(hours: tuple[time, time] | None, local: datetime) -> bool:
    """Is the local wall time inside the quiet hours (which may span midnight)?"""
    if hours is None:
        return False
    start, end = hours
    now = local.time().replace(second=0, microsecond=0, tzinfo=None)
    return start <= now < end if start < end else now >= start or now < end


class SpeakerOutput:
    """Speaks each reminder aloud through the local speaker."""

    name = "speaker"

    def __init__(self, settings: Settings, actions: Actions | None = None,
                 clock: Clock | None = None) -> None:
        require(settings, "speaker")
        conf = settings.speaker
        self.quiet_hours = conf.quiet_hours
        self.conf = conf
        self.tz = settings.tz
        self.clock: Clock = clock or SystemClock()
        self.timeout = conf.timeout.total_seconds()
        self._lock = threading.Lock()  # reminders due together are spoken one after another

    def send(self, reminder: Reminder) -> str:
        local = self.clock.now().astimezone(self.tz)
        if self.quiet_hours and is_quiet(self.quiet_hours, local):
            return f"skipped: quiet hours ({format_hours(self.quiet_hours)})"
        text = " ".join((reminder.message or reminder.task).split())
        with self._lock, tempfile.TemporaryDirectory(prefix="chime-speaker-") as folder:
            speech = Path(folder) / "speech.wav"
            self.synthesize(text, speech)
            seconds = wav_seconds(speech)
            if self.conf.volume != 100:
                scale_wav(speech, self.conf.volume / 100)
            if self.conf.chime_sound:
                self.play(self._chime(Path(folder)))
            self.play(speech)
        return f"spoke {seconds:.1f}s ({self.engine_label}, {Path(self.conf.player).name})"

    def close(self) -> None:
        pass

    # --- steps ----------------------------------------------------------------------------

    @property
    def engine_label(self) -> str:
        if self.conf.engine == "piper":
            return f"piper {Path(self.conf.piper_model).stem}"
        return f"espeak-ng {self.conf.voice}"

    def synthesize(self, text: str, wav: Path) -> None:
        """Write ``text`` as speech into ``wav``; OutputError if the engine fails."""
        if self.conf.engine == "piper":
            argv = self._piper_argv(wav)
        else:
            argv = [_need("espeak-ng"), "-v", self.conf.voice, "-s", str(self.conf.speed),
                    "-b", "1", "-w", str(wav), "--stdin"]
        result = self._run(argv, text, "synthesize")
        if result.returncode != 0:
            reason = _last_line(result.stderr)
            if "voice does not exist" in reason:
                raise OutputError(
                    f"speaker: espeak-ng has no voice {self.conf.voice!r}; "
                    f"set [speaker] voice (see `espeak-ng --voices=cmn`; Debian's espeak-ng-data "
                    f"ships cmn-latn-pinyin)")
            raise OutputError(f"speaker: {Path(argv[0]).name} failed (exit {result.returncode})"
                              f": {reason or 'no message'}")
        try:
            if wav_seconds(wav) <= 0:
                raise OutputError("speaker: the engine wrote an empty WAV file")
        except (OSError, wave.Error, EOFError) as exc:
            raise OutputError(f"speaker: the engine wrote no usable WAV file: {exc}") from exc

    def play(self, wav: Path) -> None:
        """Play a WAV file; OutputError if the player fails."""
        player = self.conf.player
        name = Path(player).name
        exe = player if os.sep in player else _need(player)
        argv = [exe, "-q", str(wav)] if name == "aplay" else [exe, str(wav)]
        result = self._run(argv, None, "play")
        if result.returncode != 0:
            raise OutputError(f"speaker: {name} failed (exit {result.returncode}): "
                              f"{_last_line(result.stderr) or 'no message'}")

    def _piper_argv(self, wav: Path) -> list[str]:
        model = Path(self.conf.piper_model).expanduser()
        if not model.is_file():
            raise OutputError(f"speaker: piper voice model {model} does not exist (download "
                              f"the .onnx and its .onnx.json once; chime never downloads)")
        if not Path(f"{model}.json").is_file():
            raise OutputError(f"speaker: piper voice config {model}.json is missing")
        exe = shutil.which("piper")
        if exe:
            command = [exe]
        elif importlib.util.find_spec("piper") is not None:
            command = [sys.executable, "-m", "piper"]
        else:
            raise OutputError("speaker: piper is not installed (pip install piper-tts, or put "
                              "the piper executable on PATH)")
        return [*command, "--model", str(model), "--output_file", str(wav)]

    def _chime(self, folder: Path) -> Path:
        """The chime sound, volume-adjusted in the temp folder if needed."""
        sound = Path(self.conf.chime_sound).expanduser()
        if not sound.is_file():
            raise OutputError(f"speaker: chime sound {sound} does not exist")
        if self.conf.volume == 100:
            return sound
        copy = folder / "chime.wav"
        shutil.copyfile(sound, copy)
        try:
            scale_wav(copy, self.conf.volume / 100)
        except (wave.Error, EOFError, ValueError) as exc:
            raise OutputError(f"speaker: chime sound {sound} is not a 16-bit WAV: {exc}") from exc
        return copy

    def _run(self, argv: list[str], stdin: str | None, step: str
             ) -> subprocess.CompletedProcess[str]:
        log.debug("speaker %s: %s", step, argv)
        try:
            return subprocess.run(argv, input=stdin if stdin is not None else "",
                                  capture_output=True, text=True, encoding="utf-8",
                                  errors="replace", timeout=self.timeout, check=False)
        except subprocess.TimeoutExpired:
            raise OutputError(f"speaker: {Path(argv[0]).name} did not finish {step} within "
                              f"{self.timeout:g}s") from None
        except OSError as exc:
            raise OutputError(f"speaker: cannot run {argv[0]}: {exc}") from exc


def wav_seconds(path: Path) -> float:
    with wave.open(str(path), "rb") as w:
        return w.getnframes() / float(w.getframerate())


def scale_wav(path: Path, factor: float) -> None:
    """Multiply the 16-bit samples of a WAV file by ``factor`` (clipped), in place."""
    with wave.open(str(path), "rb") as w:
        params = w.getparams()
        frames = w.readframes(w.getnframes())
    if params.sampwidth != 2:
        raise ValueError(f"{params.sampwidth * 8}-bit samples; only 16-bit is supported")
    samples = array.array("h", frames)
    if sys.byteorder == "big":
        samples.byteswap()
    for i, value in enumerate(samples):
        samples[i] = max(-32768, min(32767, round(value * factor)))
    if sys.byteorder == "big":
        samples.byteswap()
    with wave.open(str(path), "wb") as w:
        w.setparams(params)
        w.writeframes(samples.tobytes())


def _need(program: str) -> str:
    exe = shutil.which(program)
    if exe is None:
        package = PACKAGES.get(program, program)
        raise OutputError(f"speaker: {program} is not installed (apt install {package})")
    return exe


def _last_line(text: str) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""
