"""A clock that jumps: the real daemon under libfaketime, its wall clock moved while it runs.

libfaketime (Debian `faketime`) reads the offset from FAKETIME_TIMESTAMP_FILE on every call
(FAKETIME_NO_CACHE=1); the monotonic clock stays real, as on a board whose NTP client steps
the wall clock. The CLI runs under the same offset: on the board it shares the daemon's clock.
"""

from __future__ import annotations

import glob
import json
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from daemon_fixtures import Daemon, child_env, chime_cmd, heartbeat, iso, occurrences, utc, wait_for

pytestmark = pytest.mark.slow

LIBFAKETIME = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1"))
# On time, within this: on a loaded 2-core machine the first prepare (which builds the text
# generator) can hold the daemon up for seconds; `late` starts at [daemon] late_after (60 s).
SLACK_S = 5.0


class FakeClock:
    """The offset file that libfaketime reads, and the environment that points at it."""

    def __init__(self, tmp_path: Path, offset: timedelta) -> None:
        assert LIBFAKETIME, "libfaketime missing: scripts/system-deps.sh installs faketime"
        self.file = tmp_path / "faketime"
        self.set(offset)
        self.env = {"LD_PRELOAD": LIBFAKETIME[0], "FAKETIME_TIMESTAMP_FILE": str(self.file),
                    "FAKETIME_NO_CACHE": "1", "FAKETIME_DONT_FAKE_MONOTONIC": "1"}

    def set(self, offset: timedelta) -> None:
        self.offset = offset
        self.file.write_text(f"{int(offset.total_seconds()):+d}\n")

    def now(self) -> datetime:
        return datetime.now(timezone.utc) + self.offset

    def cli(self, db: Path, *args: str, config: Path | None = None) -> str:
        extra = ["--config", str(config)] if config else []
        result = subprocess.run([*chime_cmd(), "--db", str(db), *extra, *args],
                                capture_output=True, text=True, env=child_env(**self.env),
                                timeout=60)
        assert result.returncode == 0, result.stderr
        return result.stdout


def by_task(db: Path) -> dict[str, dict]:  # type: ignore[type-arg]
    return {o["task"]: o for o in occurrences(db)}


def printed(daemon: Daemon, task: str) -> int:
    return sum(f" {task} — " in line for line in daemon.stdout_lines())


def test_forward_jump_of_two_hours(db_path: Path, tmp_path: Path) -> None:
    clock = FakeClock(tmp_path, timedelta(0))
    daemon = Daemon(db_path, **clock.env)
    try:
        daemon.wait_ready()
        t0 = clock.now()
        clock.cli(db_path, "add", "跳过很久", "--at", iso(t0 + timedelta(hours=1)))
        clock.cli(db_path, "add", "跳过不久", "--at", iso(t0 + timedelta(minutes=110)))
        clock.set(timedelta(hours=2))
        at = clock.now().replace(microsecond=0) + timedelta(seconds=8)
        clock.cli(db_path, "add", "跳后准时", "--at", iso(at), "--lead", "3s")
        wait_for(lambda: by_task(db_path).get("跳后准时", {}).get("status") == "delivered", 40,
                 "the reminder after the jump")
        rows = by_task(db_path)
        assert rows["跳过很久"]["status"] == "missed"  # recorded at the jump, not at a restart
        assert rows["跳过不久"]["status"] == "late"
        assert 0 <= (utc(rows["跳后准时"]["delivered_at"]) - at).total_seconds() < SLACK_S
    finally:
        assert daemon.stop() == 0
    assert "stepped forward by 2:00:00" in daemon.err.read_text()
    assert printed(daemon, "跳过很久") == 0
    assert printed(daemon, "跳过不久") == 1 and printed(daemon, "跳后准时") == 1


def test_backward_jump_of_one_hour(db_path: Path, tmp_path: Path) -> None:
    clock = FakeClock(tmp_path, timedelta(0))
    daemon = Daemon(db_path, **clock.env)
    try:
        daemon.wait_ready()
        first = clock.now().replace(microsecond=0) + timedelta(seconds=5)
        clock.cli(db_path, "add", "跳前", "--at", iso(first), "--lead", "2s")
        wait_for(lambda: by_task(db_path).get("跳前", {}).get("status") == "delivered", 30,
                 "the reminder before the jump")
        clock.set(timedelta(hours=-1))
        jumped = clock.now()
        # The heartbeat keeps ticking from the new now (an interval job would wait an hour)...
        wait_for(lambda: jumped <= utc_at(heartbeat(db_path)) < jumped + timedelta(minutes=10), 20,
                 "a heartbeat after the jump")
        # ...and the plan, re-made from the new now, does not hold the delivered slot again.
        event = by_task(db_path)["跳前"]["event_id"]
        assert event not in [n["event_id"] for n in heartbeat(db_path)["next"]]  # type: ignore[index]
        then = clock.now().replace(microsecond=0) + timedelta(seconds=6)
        clock.cli(db_path, "add", "跳后", "--at", iso(then), "--lead", "2s")
        wait_for(lambda: by_task(db_path).get("跳后", {}).get("status") == "delivered", 30,
                 "the reminder after the jump")
    finally:
        assert daemon.stop() == 0
    assert "stepped backward by 1:00:00" in daemon.err.read_text()
    assert 0 <= (utc(by_task(db_path)["跳后"]["delivered_at"]) - then).total_seconds() < SLACK_S
    assert printed(daemon, "跳前") == 1 and printed(daemon, "跳后") == 1


def utc_at(beat: dict | None) -> datetime:  # type: ignore[type-arg]
    return datetime.fromisoformat(beat["at"]) if beat else datetime.min.replace(tzinfo=timezone.utc)


@pytest.mark.parametrize("start", [timedelta(days=-3), timedelta(days=3)], ids=["behind", "ahead"])
def test_waits_for_time_sync_then_jumps_to_now(db_path: Path, tmp_path: Path,
                                               start: timedelta) -> None:
    """Nothing is late or missed while the clock is untrusted; at sync, the rules apply once.

    Three days ahead is the dangerous case: without waiting, the start-up catch-up would record
    every reminder of the next three days as missed."""
    flag = tmp_path / "synchronized"
    config = tmp_path / "config.toml"
    config.write_text(f'[daemon]\nwait_for_time_sync = true\ntime_sync_flag = "{flag}"\n'
                      'time_sync_max_wait = "10m"\n')
    clock = FakeClock(tmp_path, timedelta(hours=-1))  # the reminders were added an hour ago
    t0 = datetime.now(timezone.utc).replace(microsecond=0)
    clock.cli(db_path, "add", "早就过了", "--at", iso(t0 - timedelta(minutes=45)), config=config)
    clock.cli(db_path, "add", "刚刚过了", "--at", iso(t0 - timedelta(minutes=3)), config=config)
    on_time = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=20)
    clock.cli(db_path, "add", "准时", "--at", iso(on_time), "--lead", "3s", config=config)
    clock.set(start)
    daemon = Daemon(db_path, config, CHIME_WAIT_FOR_TIME_SYNC="1", **clock.env)
    try:
        daemon.wait_ready()
        assert "waiting for the system clock" in clock.cli(db_path, "status", config=config)
        assert all(o["status"] in ("pending", "prepared") for o in occurrences(db_path))
        # On a slow machine the sync may come after 准时's time: then the catch-up delivers it,
        # late. Either way it is delivered once, by the rule that fits the moment of the sync.
        expected = "delivered" if datetime.now(timezone.utc) < on_time - timedelta(seconds=3) \
            else "late"
        clock.set(timedelta(0))
        flag.touch()
        want = {"早就过了": "missed", "刚刚过了": "late", "准时": expected}
        wait_for(lambda: {t: o["status"] for t, o in by_task(db_path).items()} == want, 40,
                 f"{want} (准时 due {on_time:%H:%M:%S})")
        rows = by_task(db_path)
        assert json.loads(clock.cli(db_path, "status", "--json", config=config))["clock"] == \
            "synchronised"
    finally:
        assert daemon.stop() == 0
    if expected == "delivered":
        assert 0 <= (utc(rows["准时"]["delivered_at"]) - on_time).total_seconds() < SLACK_S
    assert printed(daemon, "早就过了") == 0
    assert printed(daemon, "刚刚过了") == 1 and printed(daemon, "准时") == 1
