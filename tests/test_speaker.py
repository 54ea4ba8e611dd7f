"""The speaker output with the real espeak-ng and aplay (into an ALSA file sink: no sound card)."""

from __future__ import annotations

import array
import math
import subprocess
import wave
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from audio_fixtures import alsa_home, require, wav_frames, write_tone

from daemon.clock import FixedClock
from daemon.config import Settings, load_settings
from daemon.config_values import parse_quiet_hours
from daemon.errors import ConfigError, OutputError
from daemon.outputs import base as outputs
from daemon.outputs.base import Reminder
from daemon.outputs.speaker import SpeakerOutput, is_quiet

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOON = datetime(2026, 11, 28, 12, 0, tzinfo=SHANGHAI)
SENTENCE = "早上好！今天多云，记得带伞，该去买咖啡啦。"
HANZI = sum("\u4e00" <= c <= "\u9fff" for c in SENTENCE)


@pytest.fixture(autouse=True)
def tools() -> None:
    require("espeak-ng", "espeak-ng")
    require("aplay", "alsa-utils")


@pytest.fixture
def sink(isolated_env: Path, tmp_path: Path) -> Path:
    """The file that the default ALSA device writes into."""
    out = tmp_path / "sink.raw"
    alsa_home(isolated_env, out)
    return out


def speaker(settings: Settings, at: datetime = NOON, **keys: object) -> SpeakerOutput:
    for key, value in keys.items():
        if key == "quiet_hours":  # as the config converts it
            value = parse_quiet_hours(str(value))
        setattr(settings.speaker, key, value)
    return SpeakerOutput(settings, None, FixedClock(at))


def reminder(message: str = SENTENCE, task: str = "买咖啡") -> Reminder:
    return Reminder(7, task, message, NOON)


def rms(frames: bytes) -> float:
    samples = array.array("h", frames)
    return math.sqrt(sum(s * s for s in samples) / max(1, len(samples)))


def synth(out: SpeakerOutput, text: str, path: Path) -> float:
    out.synthesize(text, path)
    with wave.open(str(path), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth()) == (1, 2)
        return w.getnframes() / w.getframerate()


# --- the voice -------------------------------------------------------------------------------

def test_default_voice_reads_mandarin_with_the_right_tones(settings: Settings) -> None:
    """妈麻马骂 carry tones 1-2-3-4: cmn-latn-pinyin gives 55/35/21/51; Debian's plain cmn
    voice instead reads the pinyin tone digits as English words."""
    assert settings.speaker.voice == "cmn-latn-pinyin"

    def phonemes(voice: str) -> str:
        return subprocess.run(["espeak-ng", "-v", voice, "-q", "-x", "-b", "1", "妈麻马骂"],
                              capture_output=True, text=True, check=True).stdout

    good = phonemes(settings.speaker.voice)
    assert [p for p in ("55", "35", "21", "51") if p in good] == ["55", "35", "21", "51"], good
    assert "(en)" not in good
    assert "(en)" in phonemes("cmn")  # the trap this default avoids


# --- synthesis ---------------------------------------------------------------------------------

def test_a_chinese_sentence_becomes_a_wav_of_plausible_length(settings: Settings,
                                                               tmp_path: Path) -> None:
    out = speaker(settings)
    one = synth(out, SENTENCE, tmp_path / "one.wav")
    assert 0.15 * HANZI < one < 0.6 * HANZI, one  # about 3 syllables a second at 150 wpm
    assert rms(wav_frames(tmp_path / "one.wav")) > 300  # speech, not silence
    two = synth(out, SENTENCE + SENTENCE, tmp_path / "two.wav")
    assert 1.7 < two / one < 2.3
    fast = synth(speaker(settings, speed=300), SENTENCE, tmp_path / "fast.wav")
    assert fast < 0.6 * one


def test_a_missing_voice_is_a_clear_failure(settings: Settings, sink: Path) -> None:
    with pytest.raises(OutputError, match="espeak-ng has no voice 'xx-nonesuch'"):
        speaker(settings, voice="xx-nonesuch").send(reminder())
    assert not sink.exists()


# --- playback --------------------------------------------------------------------------------

def test_speech_plays_through_aplay_into_the_alsa_sink(settings: Settings, sink: Path,
                                                       tmp_path: Path) -> None:
    out = speaker(settings)
    detail = out.send(reminder())
    assert detail.startswith("spoke ") and "espeak-ng cmn-latn-pinyin" in detail and "aplay" in detail
    expected = tmp_path / "expected.wav"
    synth(out, SENTENCE, expected)  # espeak-ng is deterministic
    frames = wav_frames(expected)
    played = sink.read_bytes()
    assert played[: len(frames)] == frames
    assert len(played) - len(frames) < 22050  # at most a period of padding


def test_volume_scales_the_samples(settings: Settings, sink: Path, tmp_path: Path) -> None:
    out = speaker(settings, volume=50)
    out.send(reminder())
    full = array.array("h", wav_frames(Path(synth_file(settings, tmp_path))))
    half = array.array("h", sink.read_bytes()[: 2 * len(full)])
    assert all(abs(h - f / 2) <= 1 for h, f in zip(half, full, strict=True))
    assert rms(half.tobytes()) < 0.55 * rms(full.tobytes())


def synth_file(settings: Settings, tmp_path: Path) -> Path:
    path = tmp_path / "full.wav"
    speaker(settings, volume=100).synthesize(SENTENCE, path)
    return path


def test_the_chime_sound_plays_before_the_speech(settings: Settings, isolated_env: Path,
                                                 tmp_path: Path) -> None:
    appended = tmp_path / "appended.raw"
    (isolated_env / ".asoundrc").write_text(
        'pcm.!default {\n type file\n slave.pcm "null"\n'
        f' file "| cat >> {appended}"\n format "raw"\n}}\n'
    )
    tone = write_tone(tmp_path / "ding.wav")
    out = speaker(settings, chime_sound=str(tone))
    out.send(reminder())
    played = appended.read_bytes()
    chime = wav_frames(tone)
    speech = wav_frames(synth_file(settings, tmp_path))
    assert played.startswith(chime)
    assert played.find(speech) >= len(chime)


def test_a_missing_chime_sound_is_a_failure(settings: Settings, sink: Path, tmp_path: Path) -> None:
    with pytest.raises(OutputError, match=r"chime sound .* does not exist"):
        speaker(settings, chime_sound=str(tmp_path / "nope.wav")).send(reminder())


def test_a_failing_player_is_a_failure(settings: Settings, isolated_env: Path,
                                       tmp_path: Path) -> None:
    alsa_home(isolated_env, tmp_path / "no-such-dir" / "sink.raw")
    with pytest.raises(OutputError, match=r"speaker: aplay failed \(exit 1\)"):
        speaker(settings).send(reminder())


def test_a_hanging_player_times_out(settings: Settings, isolated_env: Path,
                                    tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    import os

    os.mkfifo(fifo)  # nobody reads it: aplay blocks opening its output
    alsa_home(isolated_env, fifo)
    out = speaker(settings, timeout=timedelta(seconds=2))
    with pytest.raises(OutputError, match="aplay did not finish play within 2s"):
        out.send(reminder())


def test_failures_are_recorded_by_name_through_the_registry(settings: Settings,
                                                            isolated_env: Path,
                                                            tmp_path: Path) -> None:
    alsa_home(isolated_env, tmp_path / "no-such-dir" / "sink.raw")
    out = outputs.create("speaker", settings)
    assert out.name == "speaker"
    with pytest.raises(OutputError):
        out.send(reminder())
    out.close()


# --- quiet hours -------------------------------------------------------------------------------

def test_quiet_hours_skip_the_speech_without_failing(settings: Settings, sink: Path) -> None:
    night = datetime(2026, 11, 28, 23, 30, tzinfo=SHANGHAI)
    out = speaker(settings, at=night, quiet_hours="22:00-07:00")
    assert out.send(reminder()) == "skipped: quiet hours (22:00-07:00)"
    assert not sink.exists()
    day = speaker(settings, at=NOON, quiet_hours="22:00-07:00")
    assert day.send(reminder()).startswith("spoke ")
    assert sink.stat().st_size > 0


def test_quiet_hours_are_read_in_the_configured_zone(settings: Settings, sink: Path) -> None:
    utc_noon = datetime(2026, 11, 28, 15, 0, tzinfo=ZoneInfo("UTC"))  # 23:00 in Shanghai
    out = speaker(settings, at=utc_noon, quiet_hours="22:00-07:00")
    assert out.send(reminder()).startswith("skipped")


@pytest.mark.parametrize(("hours", "clock", "quiet"), [
    ("22:00-07:00", "22:00", True), ("22:00-07:00", "03:15", True),
    ("22:00-07:00", "06:59", True), ("22:00-07:00", "07:00", False),
    ("22:00-07:00", "21:59", False), ("12:30-14:00", "13:00", True),
    ("12:30-14:00", "14:00", False), ("12:30-14:00", "12:29", False),
    ("", "03:00", False),
])
def test_quiet_hours_span_midnight(hours: str, clock: str, quiet: bool) -> None:
    h, m = map(int, clock.split(":"))
    parsed = parse_quiet_hours(hours)
    assert (parsed is not None and is_quiet(parsed, NOON.replace(hour=h, minute=m))) is quiet


@pytest.mark.parametrize("bad", ["22-7", "25:00-07:00", "22:00", "22:00-22:00", "晚上"])
def test_bad_quiet_hours_name_the_key(tmp_path: Path, bad: str) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[speaker]\nquiet_hours = "{bad}"\n')
    with pytest.raises(ConfigError, match=r"\[speaker\] quiet_hours"):
        load_settings(config, tmp_path / "chime.db")


@pytest.mark.parametrize(("key", "value", "message"), [
    ("engine", "festival", r"\[speaker\] engine"),
    ("player", "mpv", r"\[speaker\] player"),
    ("volume", 300, r"\[speaker\] volume"),
    ("speed", 5, r"\[speaker\] speed"),
    ("timeout", timedelta(0), r"\[speaker\] timeout"),
])
def test_bad_settings_are_config_errors(settings: Settings, key: str, value: object,
                                        message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        speaker(settings, **{key: value})


# --- piper -------------------------------------------------------------------------------------

def test_piper_needs_a_model_file_and_never_downloads(settings: Settings, tmp_path: Path,
                                                      sink: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[speaker\] piper_model"):
        speaker(settings, engine="piper")
    out = speaker(settings, engine="piper", piper_model=str(tmp_path / "zh_CN-huayan-medium.onnx"))
    with pytest.raises(OutputError, match=r"does not exist .*never downloads"):
        out.send(reminder())
    assert not sink.exists()


# --- hostile text --------------------------------------------------------------------------------

HOSTILE = ("他说\"别'忘'了\" $(touch {canary}) `touch {canary}` ; rm -rf {victim} && "
           "echo pwned | sh -- --help -v xx 🎉🔔 <b>&amp;</b> ")


def test_hostile_text_is_spoken_verbatim_and_runs_nothing(settings: Settings, sink: Path,
                                                         tmp_path: Path) -> None:
    canary, victim = tmp_path / "pwned", tmp_path / "victim"
    victim.mkdir()
    text = HOSTILE.format(canary=canary, victim=victim) + "很长的提醒。" * 150
    out = speaker(settings)
    assert out.send(reminder(message=text)).startswith("spoke ")
    assert not canary.exists() and victim.is_dir()
    # The WAV equals what espeak-ng makes of the same text read from a file: verbatim.
    text_file = tmp_path / "text.txt"
    text_file.write_text(text, encoding="utf-8")
    direct = tmp_path / "direct.wav"
    subprocess.run(["espeak-ng", "-v", settings.speaker.voice, "-s", "150", "-b", "1",
                    "-w", str(direct), "-f", str(text_file)], check=True, capture_output=True)
    frames = wav_frames(direct)
    assert sink.read_bytes()[: len(frames)] == frames
