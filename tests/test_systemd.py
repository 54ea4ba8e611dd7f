"""The systemd units: verified and security-rated by systemd-analyze, written by the CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from daemon.cli import main
from daemon.cli.service import (
    DEFAULT_SYSTEM_EXEC,
    DEFAULT_USER_EXEC,
    DEFAULT_WEB_SYSTEM_EXEC,
    DEFAULT_WEB_USER_EXEC,
    exec_start,
    render_unit,
    systemd_word,
)

ROOT = Path(__file__).resolve().parents[1]
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(ANALYZE is None,
                                   reason="systemd-analyze missing: apt-get install systemd")


def chime(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "daemon", *args], capture_output=True,
                          text=True, env={**os.environ, **env}, timeout=60)


def rendered(tmp_path: Path, *flags: str) -> Path:
    """The unit `chime service install --print` writes for this venv (a real ExecStart)."""
    result = chime("service", "install", "--print", *flags)
    assert result.returncode == 0, result.stderr
    assert "systemctl" in result.stderr and "systemctl" not in result.stdout
    path = tmp_path / ("chime-web.service" if "--web" in flags else "chime.service")
    path.write_text(result.stdout, encoding="utf-8")
    return path


def verify(path: Path, user: bool, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    args = [str(ANALYZE)]
    if user:  # the user manager needs a runtime directory, even offline
        runtime = tmp_path / "runtime"
        runtime.mkdir(mode=0o700, exist_ok=True)
        env["XDG_RUNTIME_DIR"] = str(runtime)
        args.append("--user")
    return subprocess.run([*args, "verify", str(path)], capture_output=True, text=True,
                          env=env, timeout=60)


@needs_analyze
@pytest.mark.parametrize("flags", [(), ("--gpu",), ("--user",), ("--web",), ("--web", "--user")],
                         ids=["system", "gpu", "user", "web", "web-user"])
def test_units_verify_with_empty_stderr(tmp_path: Path, flags: tuple[str, ...]) -> None:
    unit = rendered(tmp_path, *flags)
    command = "web" if "--web" in flags else "run"
    assert f"ExecStart={exec_start(command=command)}\n" in unit.read_text()
    result = verify(unit, "--user" in flags, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


@needs_analyze
def test_verify_catches_a_typo(tmp_path: Path) -> None:
    """The check above can fail: a misspelt directive is reported on stderr."""
    unit = rendered(tmp_path)
    unit.write_text(unit.read_text().replace("ProtectSystem=", "ProtectSytem="))
    assert "ProtectSytem" in verify(unit, False, tmp_path).stderr


@needs_analyze
@pytest.mark.parametrize("flags", [(), ("--web",)], ids=["daemon", "web"])
def test_system_unit_exposure_at_most_2(tmp_path: Path, flags: tuple[str, ...]) -> None:
    unit = rendered(tmp_path, *flags)
    result = subprocess.run(
        [str(ANALYZE), "security", "--offline=true", "--json=short", str(unit)],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    items = {item["name"]: item for item in json.loads(result.stdout)}
    # systemd rounds every item's share of the overall exposure up, so their sum bounds it.
    exposure = sum(float(i["exposure"]) for i in items.values() if i["exposure"])
    assert exposure <= 2.0, {n: i["exposure"] for n, i in items.items() if i["exposure"]}
    for name in ("ProtectSystem=", "ProtectHome=", "PrivateTmp=", "NoNewPrivileges=",
                 "RestrictNamespaces=~user", "CapabilityBoundingSet=~CAP_SYS_ADMIN",
                 "SystemCallFilter=~@privileged", "RestrictAddressFamilies=~AF_PACKET"):
        assert items[name]["set"], name
    # systemd's own overall figure (in tenths) agrees.
    threshold = subprocess.run(
        [str(ANALYZE), "security", "--offline=true", "--threshold=20", str(unit)],
        capture_output=True, text=True, timeout=60)
    assert threshold.returncode == 0, threshold.stdout[-400:]


def test_repo_units_are_the_rendered_templates() -> None:
    system = (ROOT / "systemd" / "chime.service").read_text(encoding="utf-8")
    user = (ROOT / "systemd" / "user" / "chime.service").read_text(encoding="utf-8")
    assert system == render_unit(DEFAULT_SYSTEM_EXEC)
    assert user == render_unit(DEFAULT_USER_EXEC, user=True)
    web = (ROOT / "systemd" / "chime-web.service").read_text(encoding="utf-8")
    web_user = (ROOT / "systemd" / "user" / "chime-web.service").read_text(encoding="utf-8")
    assert web == render_unit(DEFAULT_WEB_SYSTEM_EXEC, web=True)
    assert web_user == render_unit(DEFAULT_WEB_USER_EXEC, user=True, web=True)


def test_system_unit_contract() -> None:
    text = render_unit("/opt/chime/venv/bin/chime run")
    for line in ("Type=notify", "ExecStart=/opt/chime/venv/bin/chime run", "Restart=on-failure",
                 "MemoryMax=4G", "StateDirectory=chime", "WatchdogSec=60s",
                 "RestartPreventExitStatus=73",
                 "After=network-online.target time-sync.target jtop.service sound.target",
                 "Wants=network-online.target jtop.service", "DevicePolicy=closed",
                 "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6", "CapabilityBoundingSet="):
        assert f"\n{line}\n" in text, line
    gpu = render_unit("/x run", gpu=True)
    assert "DevicePolicy=" not in gpu and "/dev/nvmap" in gpu


def test_exec_start_prefers_the_venv_script(tmp_path: Path) -> None:
    venv = tmp_path / "my venv%1" / "bin"
    venv.mkdir(parents=True)
    python = venv / "python"
    python.touch()
    assert exec_start(str(python)) == f'"{venv}/python" -m daemon run'.replace("%", "%%")
    script = venv / "chime"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    assert exec_start(str(python)) == f'"{venv}/chime" run'.replace("%", "%%")
    assert systemd_word("/opt/$HOME/a") == "/opt/$$HOME/a"


def test_install_user_writes_the_unit(isolated_env: Path) -> None:
    result = CliRunner().invoke(main, ["service", "install", "--user"])
    assert result.exit_code == 0, result.output
    path = isolated_env / ".config" / "systemd" / "user" / "chime.service"
    assert path.read_text() == render_unit(exec_start(), user=True)
    assert f"wrote {path}" in result.output
    assert "systemctl --user enable --now chime.service" in result.output


def test_install_system_to_a_file(tmp_path: Path) -> None:
    out = tmp_path / "unit" / "chime.service"
    result = CliRunner().invoke(main, ["service", "install", "--no-gpu", "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_text() == render_unit(exec_start())
    assert "sudo systemctl enable --now chime.service" in result.output
    assert f"sudo install -m 0644 {out} /etc/systemd/system/chime.service" in result.output


def test_system_install_refuses_a_venv_in_home(monkeypatch: pytest.MonkeyPatch,
                                               tmp_path: Path) -> None:
    monkeypatch.setattr(sys, "executable", "/home/ann/venv/bin/python")
    out = tmp_path / "chime.service"
    result = CliRunner().invoke(main, ["service", "install", "--output", str(out)])
    assert result.exit_code == 2
    assert "ProtectHome" in result.output and "--user" in result.output
    assert not out.exists()


def test_install_reports_an_unwritable_place(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = CliRunner().invoke(main, ["service", "install", "--output",
                                       str(blocker / "chime.service")])
    assert result.exit_code == 1
    assert "cannot write" in result.output and "--print" in result.output


def test_web_units_contract(isolated_env: Path) -> None:
    """chime-web.service: the daemon's user, state and sandbox; no sound device."""
    text = render_unit("/opt/chime/venv/bin/chime web", web=True)
    for line in ("ExecStart=/opt/chime/venv/bin/chime web", "User=chime", "StateDirectory=chime",
                 "Environment=XDG_CONFIG_HOME=/etc", "PrivateDevices=yes", "ProtectSystem=strict",
                 "After=network-online.target chime.service", "Restart=on-failure"):
        assert f"\n{line}\n" in text, line
    assert "char-alsa" not in text and "WatchdogSec" not in text
    assert "PrivateDevices" not in render_unit("/x web", web=True, gpu=True)
    result = CliRunner().invoke(main, ["service", "install", "--web", "--user"])
    assert result.exit_code == 0, result.output
    path = isolated_env / ".config" / "systemd" / "user" / "chime-web.service"
    assert path.read_text() == render_unit(exec_start(command="web"), user=True, web=True)
    assert "systemctl --user enable --now chime-web.service" in result.output
    assert "chime web token" in result.output
