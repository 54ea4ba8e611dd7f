"""`chime outputs` and `chime test-output NAME` against real outputs."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner, Result
from dbus_fixtures import NotificationServer
from pytest_httpserver import HTTPServer

from daemon.cli import main
from daemon.cli.outputs import SAMPLE_MESSAGE, SAMPLE_TASK


def chime(db: Path, *args: str, config: Path | None = None) -> Result:
    extra = ["--config", str(config)] if config else []
    return CliRunner().invoke(main, ["--db", str(db), *extra, *args], catch_exceptions=False)


def test_outputs_lists_every_output_and_marks_the_defaults(db_path: Path, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[daemon]\noutputs = ["console", "speaker"]\n')
    result = chime(db_path, "outputs", "--json", config=config)
    assert result.exit_code == 0, result.output
    items = {i["name"]: i for i in json.loads(result.output)}
    assert set(items) == {"console", "desktop", "speaker", "webhook", "ntfy"}
    assert "ntfy" in items["ntfy"]["description"]
    assert {n for n, i in items.items() if i["default"]} == {"console", "speaker"}
    assert "D-Bus" in items["desktop"]["description"]
    text = chime(db_path, "outputs", config=config).output.splitlines()
    assert [line.split()[0] for line in text if line.startswith("*")] == ["*", "*"]
    assert any(line.startswith("* speaker") for line in text)


def test_test_output_sends_a_sample_notification(db_path: Path, bus: str) -> None:
    server = NotificationServer(bus)
    try:
        result = chime(db_path, "test-output", "desktop")
        assert result.exit_code == 0, result.output
        assert result.output.strip() == "desktop: notification 1"
        (note,) = server.wait_for(1)
        assert (note.summary, note.body, note.actions) == (SAMPLE_TASK, SAMPLE_MESSAGE, [])
    finally:
        server.close()


def test_test_output_reports_a_failure_with_a_non_zero_exit(db_path: Path, bus: str) -> None:
    result = chime(db_path, "test-output", "desktop")  # a bus, but no notification server
    assert result.exit_code == 1
    assert "chime: desktop: no notification server" in result.output
    result = chime(db_path, "test-output", "desktop", "--json")
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert report["ok"] is False and "DBUS_SESSION_BUS_ADDRESS" in report["error"]


def test_test_output_webhook_with_a_custom_text(db_path: Path, tmp_path: Path,
                                                httpserver: HTTPServer) -> None:
    httpserver.expect_oneshot_request("/hook", method="POST").respond_with_data("ok")
    config = tmp_path / "config.toml"
    config.write_text(f'[webhook]\nurl = "{httpserver.url_for("/hook")}"\n')
    result = chime(db_path, "test-output", "webhook", "--task", "买菜", "--message", "$(id)",
                   "--json", config=config)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"output": "webhook", "ok": True, "detail": "HTTP 200"}
    body = json.loads(httpserver.log[0][0].get_data())
    assert (body["task"], body["message"], body["occurrence_id"]) == ("买菜", "$(id)", None)


def test_test_output_refuses_an_unknown_name(db_path: Path) -> None:
    result = chime(db_path, "test-output", "pager")
    assert result.exit_code == 2
    assert "unknown output 'pager' (known: console, desktop, ntfy, speaker, webhook)" in result.output


def test_test_output_names_a_bad_setting(db_path: Path, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[speaker]\nquiet_hours = "late"\n')
    result = chime(db_path, "test-output", "speaker", config=config)
    assert result.exit_code == 78
    assert "[speaker] quiet_hours" in result.output
