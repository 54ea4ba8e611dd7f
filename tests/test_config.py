"""The configuration: one pass lists every problem, values come back converted, and every
command refuses a broken config with one line per problem and never a traceback."""

from __future__ import annotations

import subprocess
import sys
from datetime import time, timedelta
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from daemon.cli import main
from daemon.config import load_settings
from daemon.config_values import Span
from daemon.errors import ConfigError

BROKEN = {
    "output name": '[daemon]\noutputs = ["consle"]\n',
    "log level": '[daemon]\nlog_level = "LOUD"\n',
    "speaker": '[speaker]\nengine = "festival"\nplayer = "mpv"\nvoice = "a b"\n',
    "webhook": '[webhook]\nurl = "ftp://example.org/hook"\nheaders = { "X A" = "1" }\n',
    "duration": '[daemon]\nlead = "soon"\n[model]\ntimeout = -5\n',
    "time": '[speaker]\nquiet_hours = "22-7"\n[calendars]\nall_day_at = "8 o\'clock"\n',
    "spans": '[days]\nperiods = ["暑假 07-01..13-01"]\nparts_of_day = ["01:00 凌晨"]\n',
    "type": '[daemon]\noutputs = "console"\n[web]\nport = "80"\n',
    "unknown": '[daemon]\nbogus = 1\n[nope]\nx = 1\n',
    "toml": '[daemon\noutputs = ["console"]\n',
}


def commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every runnable command path (the leaves of the command tree)."""
    ctx = click.Context(group)
    found: list[tuple[str, ...]] = []
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None
        if isinstance(command, click.Group):
            found += commands(command, (*prefix, name))
        else:
            found.append((*prefix, name))
    return found


def test_every_problem_is_listed_at_once_naming_section_and_key(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[daemon]\noutputs = ["consle"]\nlog_level = "LOUD"\nbogus = 1\n'
                      '[speaker]\nengine = "festival"\nplayer = "mpv"\nvoice = "a b"\n'
                      'quiet_hours = "22-7"\n'
                      '[webhook]\nurl = "ftp://example.org/hook"\nheaders = { "X A" = "1" }\n'
                      '[calendars]\nall_day_at = "8 o\'clock"\n'
                      '[days]\nperiods = ["暑假 07-01..13-01"]\nparts_of_day = ["01:00 凌晨"]\n'
                      '[nope]\nx = 1\n', encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_settings(config, tmp_path / "chime.db")
    expected = ["[daemon] outputs: unknown output 'consle'", "[daemon] log_level: 'LOUD'",
                "[daemon] bogus: unknown key", "[speaker] quiet_hours: expected 'HH:MM-HH:MM'",
                "[calendars] all_day_at: \"8 o'clock\" is not a time",
                "[days] periods: bad entry '暑假 07-01..13-01'",
                "[days] parts_of_day: the first part must start at 00:00",
                "[nope] is not a known section",
                "[speaker] engine: must be one of espeak-ng, piper",
                "[speaker] player: must be one of aplay, paplay, pw-play",
                "[speaker] voice: 'a b' is not a voice name",
                "[webhook] url: expected an http:// or https:// URL",
                "[webhook] headers: invalid header name 'X A'"]
    problems = info.value.problems
    assert len(problems) == len(expected), problems
    for fragment, problem in zip(expected, problems, strict=True):
        assert problem.startswith(fragment), (fragment, problem)
    assert str(info.value) == "invalid configuration: " + "; ".join(problems)


def test_durations_and_types_are_checked(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[daemon]\nlead = "soon"\noutputs = "console"\n[model]\ntimeout = -5\n'
                      '[web]\nport = "80"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_settings(config, tmp_path / "chime.db")
    assert [p.split(":", 1)[0] for p in info.value.problems] == [
        "[daemon] lead", "[daemon] outputs", "[model] timeout", "[web] port"]
    assert "[model] timeout: must not be negative" in str(info.value)


def test_values_come_back_converted(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[daemon]\nlog_level = "debug"\noutputs = ["console", "webhook"]\n'
                      '[speaker]\nquiet_hours = "22:30-7:00"\n'
                      '[webhook]\nurl = "http://127.0.0.1:9/x"\nheaders = { X-Token = "t" }\n'
                      '[calendars]\nall_day_at = "7:05"\n'
                      '[days]\npersonal = ["生日 05-20"]\n'
                      'parts_of_day = ["00:00 凌晨", "06:00 早晨", "12:00 中午", "18:00 晚上"]\n',
                      encoding="utf-8")
    s = load_settings(config, tmp_path / "chime.db")
    assert s.daemon.log_level == "DEBUG"
    assert s.speaker.quiet_hours == (time(22, 30), time(7, 0))
    assert s.calendars.all_day_at == time(7, 5)
    assert s.days.personal == [Span("生日", (5, 20, None), (5, 20, None))]
    assert s.days.parts_of_day == [(time(0), "凌晨"), (time(6), "早晨"), (time(12), "中午"),
                                   (time(18), "晚上")]
    assert s.daemon.lead == timedelta(minutes=5) and s.webhook.headers == {"X-Token": "t"}


def test_an_enabled_output_must_be_usable_at_load(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[daemon]\noutputs = ["webhook"]\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"^invalid configuration: \[webhook\] url: not set"):
        load_settings(config, tmp_path / "chime.db")
    config.write_text('[webhook]\nurl = ""\n', encoding="utf-8")  # not enabled: no problem
    assert load_settings(config, tmp_path / "chime.db").webhook.url == ""


@pytest.mark.parametrize("broken", sorted(BROKEN))
def test_every_command_refuses_a_broken_config_in_one_line_per_problem(
        tmp_path: Path, broken: str) -> None:
    config = tmp_path / "config.toml"
    config.write_text(BROKEN[broken], encoding="utf-8")
    db = tmp_path / "chime.db"
    paths = [p for p in commands(main) if p != ("doctor",)]  # the doctor reports it as a check
    assert len(paths) > 25
    for path in paths:
        result = CliRunner().invoke(main, ["--config", str(config), "--db", str(db), *path])
        where = f"chime {' '.join(path)} with a broken {broken}"
        assert result.exit_code == 78, f"{where}: exit {result.exit_code}\n{result.output}"
        assert isinstance(result.exception, SystemExit), f"{where}: {result.exception!r}"
        lines = result.stderr.splitlines()
        assert lines and all(line.startswith("chime: ") for line in lines), f"{where}: {lines}"
        if broken != "toml":
            assert all(line.startswith("chime: [") for line in lines), f"{where}: {lines}"
        assert "Traceback" not in result.output
    assert not db.exists(), "a command wrote the database despite the broken config"


def test_run_exits_at_once_without_a_traceback(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(BROKEN["log level"] + 'outputs = ["consle"]\n', encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "daemon", "--config", str(config),
                           "--db", str(tmp_path / "chime.db"), "run"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 78
    assert done.stderr.splitlines() == [
        "chime: [daemon] log_level: 'LOUD' is not one of DEBUG, INFO, WARNING, ERROR, CRITICAL",
        "chime: [daemon] outputs: unknown output 'consle' "
        "(known: console, desktop, ntfy, speaker, webhook)"]


def test_output_option_is_checked_like_the_config(tmp_path: Path) -> None:
    db = ["--db", str(tmp_path / "chime.db")]
    result = CliRunner().invoke(main, [*db, "add", "x", "--at", "in 1 hour", "--output", "consle"])
    assert result.exit_code == 2
    assert result.stderr == ("chime: unknown output 'consle' "
                             "(known: console, desktop, ntfy, speaker, webhook)\n")


def test_machine_warnings_are_in_status_output_once_not_logged(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[guards]\nsysfs_root = "{tmp_path / "nosys"}"\n', encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "daemon", "--config", str(config),
                           "--db", str(tmp_path / "chime.db"), "status"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 3, done.stderr  # not running
    assert "WARNING" not in done.stderr, done.stderr
    notes = [line for line in done.stdout.splitlines() if line.startswith("  note: ")]
    assert notes.count(f"  note: no thermal zones under {tmp_path / 'nosys/class/thermal'}: "
                       "temperature unknown") == 1, done.stdout
    assert len(notes) == len(set(notes))
