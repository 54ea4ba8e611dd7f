"""The command line: every command has help, JSON views, and bad input changes nothing."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from daemon.cli import main


def run(db: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["--db", str(db), *args], catch_exceptions=False)


def dump(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        return list(conn.iterdump())


def all_commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command path, each lazily registered command loaded (so a bad entry fails here)."""
    found = []
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None, f"chime {' '.join((*prefix, name))} does not load"
        found.append((*prefix, name))
        if isinstance(command, click.Group):
            found += all_commands(command, (*prefix, name))
    return found


@pytest.mark.parametrize("path", all_commands(main), ids=" ".join)
def test_every_command_has_help(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(main, [*path, "--help"])
    assert result.exit_code == 0, result.output
    command: click.Command = main
    for name in path:
        assert isinstance(command, click.Group)
        command = command.get_command(click.Context(command), name)  # type: ignore[assignment]
    assert command.help, f"chime {' '.join(path)} has no help text"
    assert "Usage:" in result.output


HEAVY = ("sqlalchemy", "requests", "daemon.app", "torch",
         "dateparser", "daemon.chinese_time", "daemon.recurrence")  # time parsers load on use


@pytest.mark.parametrize("args", [["--version"], ["--help"]], ids=" ".join)
def test_version_and_help_import_nothing_heavy(args: list[str]) -> None:
    """Commands load lazily: the front door imports click and the command modules only."""
    probe = ("import sys, runpy\n"
             f"sys.argv = ['chime', *{args!r}]\n"
             "try:\n    runpy.run_module('daemon', run_name='__main__')\n"
             "except SystemExit:\n    pass\n"
             f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True, timeout=60)
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout


def test_add_list_show_edit_pause_remove(db_path: Path) -> None:
    r = run(db_path, "add", "买咖啡", "--at", "2030-01-02 08:00", "--lead", "10m", "--json")
    assert r.exit_code == 0, r.stderr
    event_id = json.loads(r.stdout)["id"]
    r = run(db_path, "add", "standup", "--at", "2030-01-01 09:30", "--every", "weekdays",
            "--tz", "Europe/Berlin")
    assert r.stdout.startswith("#2 standup — 周二 2030-01-01 09:30 (in "), r.stdout
    assert r.stdout.rstrip().endswith(", repeats weekdays")
    standup = 2
    items = json.loads(run(db_path, "list", "--json").stdout)
    assert [i["task"] for i in items] == ["买咖啡", "standup"]
    assert items[0]["next"] == "2030-01-02T08:00:00+08:00"
    assert items[0]["lead"] == "10m"
    assert items[1]["rule"] == "FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR"
    assert items[1]["next"] == "2030-01-01T09:30:00+01:00"
    shown = json.loads(run(db_path, "show", str(standup), "--json").stdout)
    assert [o["at"] for o in shown["occurrences"][:3]] == [
        "2030-01-01T09:30:00+01:00", "2030-01-02T09:30:00+01:00", "2030-01-03T09:30:00+01:00"]
    assert run(db_path, "edit", str(event_id), "--text", "买两杯咖啡", "--at", "2030-01-03 07:00").exit_code == 0
    view = json.loads(run(db_path, "show", str(event_id), "--json").stdout)
    assert view["task"] == "买两杯咖啡" and view["next"] == "2030-01-03T07:00:00+08:00"
    assert run(db_path, "pause", str(standup)).exit_code == 0
    assert json.loads(run(db_path, "show", str(standup), "--json").stdout)["next"] is None
    assert run(db_path, "resume", str(standup)).exit_code == 0
    assert run(db_path, "remove", str(event_id)).exit_code == 0
    assert [i["id"] for i in json.loads(run(db_path, "list", "--json").stdout)] == [standup]
    assert "standup" in run(db_path, "list").stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["add", "x", "--at", "blorp"], "cannot understand time"),
        (["add", "x", "--at", "2020-01-01 08:00"], "in the past"),
        (["add", "x", "--at", "9999-12-31T00:00"], "too far ahead"),
        (["add", "x", "--at", "dec 31 9999 midnight"], "too far ahead"),
        (["add", "x", "--at", "2030-01-01", "--every", "FREQ=SECONDLY"], "too frequent"),
        (["add", "x", "--at", "2030-01-01", "--every", "FREQ=NEVER"], "invalid recurrence"),
        (["add", "x", "--at", "2030-01-01", "--tz", "Mars/Olympus"], "unknown time zone"),
        (["add", "   ", "--at", "2030-01-01"], "empty"),
        (["add", "x" * 201, "--at", "2030-01-01"], "at most 200"),
        (["add", "x", "--at", "2030-01-01", "--lead", "soon"], "cannot read duration"),
        (["add", "x", "--at", "2030-01-01", "--output", "pigeon"], "unknown output"),
        (["edit", "999", "--text", "y"], "no reminder with id 999"),
        (["edit", "1"], "nothing to change"),
        (["edit", "1", "--every", "FREQ=DAILY;BYHOUR=99"], "invalid recurrence"),
        (["remove", "999"], "no reminder with id 999"),
        (["pause", "999"], "no reminder with id 999"),
        (["show", "999"], "no reminder with id 999"),
        (["snooze", "999"], "no occurrence with id 999"),
        (["done", "999"], "no occurrence with id 999"),
        (["snooze", "1", "abc"], "cannot read duration"),
        (["edit", "1", "--at", "2020-01-01 08:00"], "'2020-01-01 08:00' is in the past"),
    ],
)
def test_bad_input_is_one_line_and_changes_nothing(db_path: Path, args: list[str], message: str) -> None:
    assert run(db_path, "add", "keep", "--at", "2030-01-01 08:00").exit_code == 0
    before = dump(db_path)
    result = run(db_path, *args)
    assert result.exit_code != 0
    assert message in result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("chime: ")
    assert dump(db_path) == before


def test_corrupt_and_newer_databases_are_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"garbage" * 1000)
    result = run(bad, "list")
    assert result.exit_code == 74 and "not a database" in result.stderr
    assert bad.read_bytes() == b"garbage" * 1000
    newer = tmp_path / "newer.db"
    run(newer, "list")
    with sqlite3.connect(newer) as conn:
        conn.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    before = dump(newer)
    result = run(newer, "add", "x", "--at", "2030-01-01")
    assert result.exit_code == 74 and "newer than this chime" in result.stderr
    assert dump(newer) == before


def test_bad_config_names_every_bad_key(tmp_path: Path, db_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[daemon]\nlead = "soon"\nbogus = 1\n[speaker]\nvolume = 999\n[nope]\nx = 1\n')
    result = CliRunner().invoke(main, ["--config", str(config), "--db", str(db_path), "list"])
    assert result.exit_code == 78
    for fragment in ("[daemon] lead", "[daemon] bogus: unknown key", "[speaker] volume",
                     "[nope] is not a known section"):
        assert fragment in result.stderr
    assert not db_path.exists()


def test_preview_json_has_the_context_and_template(db_path: Path) -> None:
    result = run(db_path, "preview", "买咖啡", "--at", "2030-01-05 08:30", "--json")
    data = json.loads(result.stdout)
    assert data["generator"] == "template"  # no model under the test's own XDG dirs
    assert data["fallback_reason"].startswith("model not installed: run `chime model pull` (")
    assert "买咖啡" in data["message"]
    assert data["context"]["part_of_day"] == "上午"
    assert data["context"]["day"]
    assert data["prompt"].startswith("human:天气:") and data["prompt"].endswith("提示我去做:买咖啡assistant:")
    again = json.loads(run(db_path, "preview", "买咖啡", "--at", "2030-01-05 08:30", "--json").stdout)
    assert again["message"] == data["message"]  # reproducible


def test_status_without_daemon(db_path: Path) -> None:
    run(db_path, "add", "x", "--at", "2030-01-01 08:00")
    result = run(db_path, "status", "--json")
    assert result.exit_code == 3
    data = json.loads(result.stdout)
    assert data["running"] is False and data["next"][0]["task"] == "x"


def test_default_database_location_follows_xdg_and_state_directory(
    isolated_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = CliRunner().invoke(main, ["add", "x", "--at", "2030-01-01"])
    assert result.exit_code == 0, result.stderr
    assert (isolated_env / ".local" / "share" / "chime" / "chime.db").exists()
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))
    (tmp_path / "state").mkdir()
    CliRunner().invoke(main, ["add", "x", "--at", "2030-01-01"])
    assert (tmp_path / "state" / "chime.db").exists()
