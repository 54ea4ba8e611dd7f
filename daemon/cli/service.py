"""``chime service install``: systemd units for this install.

The unit texts live here, so that an installed (non-editable) chime can write them; the copies
in ``systemd/`` are these templates rendered for ``/opt/chime/venv`` and ``~/.local/bin``, and
a test keeps them equal.
"""

from __future__ import annotations

import grp
import os
import re
import sys
from pathlib import Path

import click

from daemon.errors import ChimeError, InputError

# The sandbox both system units share (chime.service and chime-web.service).
HARDENING = """\
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateMounts=yes
NoNewPrivileges=yes
CapabilityBoundingSet=
AmbientCapabilities=
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
ProtectProc=invisible
RemoveIPC=yes
SystemCallArchitectures=native
# @resources (nice, setpriority, sched_setaffinity, mbind…) fails with EPERM, not a kill.
SystemCallFilter=@system-service
SystemCallFilter=~@privileged @resources
SystemCallErrorNumber=EPERM
"""

# Who both system units run as and where their state lives (chime and chime-web share it).
ACCOUNT = """\
User=chime
Group=chime
StateDirectory=chime
StateDirectoryMode=0770
ConfigurationDirectory=chime
Environment=XDG_CONFIG_HOME=/etc
UMask=0007
"""

SYSTEM_UNIT = """\
# chime: the reminder daemon as a system service (headless boards: Jetson Nano, Orin, servers).
# Written by `chime service install`; the database lives in /var/lib/chime (StateDirectory),
# the optional config in /etc/chime/config.toml.
#
# The `chime` user needs these groups (set at useradd, applied by systemd):
#   jtop  - read temperatures and RAM from the jtop service through /run/jtop.sock
#   audio - speak reminders through ALSA (/dev/snd)
#   video - the Jetson GPU (/dev/nvhost-*, /dev/nvmap, /dev/nvgpu/*) for the bnb-int8 backend
# To run `chime add` against this database: add yourself to the `chime` group and use
# CHIME_DB=/var/lib/chime/chime.db (the service writes it group-writable, UMask=0007).

[Unit]
Description=chime reminder daemon
# time-sync.target: with systemd-time-wait-sync.service enabled, chime starts on a synchronised
# clock; without it, chime waits by itself ([daemon] wait_for_time_sync).
After=network-online.target time-sync.target jtop.service sound.target
Wants=network-online.target jtop.service

[Service]
Type=notify
NotifyAccess=main
ExecStart={exec_start}
ExecReload=/bin/kill -HUP $MAINPID
# The main loop pings only while the scheduler's heartbeat job keeps running.
WatchdogSec=60s
TimeoutStartSec=90s
# Stopping finishes an in-flight delivery (speech can take up to [speaker] timeout).
TimeoutStopSec=90s
Restart=on-failure
RestartSec=10s
# 73 (EX_CANTCREAT): the database is read-only; a restart cannot help until someone fixes it.
RestartPreventExitStatus=73
# A worker killed for memory must not take the daemon down with it.
OOMPolicy=continue
MemoryHigh=3584M
MemoryMax=4G

{account}
# Hardening: `systemd-analyze security chime.service` rates this unit 1.4 (OK, systemd 252).
{hardening}# Not set, on purpose:
#   PrivateDevices=yes        would hide /dev/snd and the Jetson GPU nodes
#   MemoryDenyWriteExecute=   torch's int8 kernels (fbgemm, oneDNN) generate code at run time
#   ProcSubset=pid            the RAM guard reads /proc/meminfo
{devices}
[Install]
WantedBy=multi-user.target
"""

CPU_DEVICES = """\
# Devices: sound only. On a Jetson running the GPU backend, install with --gpu (it drops
# these two lines so that /dev/nvhost-*, /dev/nvmap and /dev/nvgpu/* are reachable).
DevicePolicy=closed
DeviceAllow=char-alsa rw
"""

GPU_DEVICES = """\
# Devices: the Jetson GPU backend needs /dev/nvhost-*, /dev/nvmap (and /dev/nvgpu/* on
# JetPack 6); they are reachable through the `video` group, so no device policy is set.
"""

# The sandbox a user manager can apply (both user units).
USER_SANDBOX = """\
NoNewPrivileges=yes
LockPersonality=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged @resources
SystemCallErrorNumber=EPERM
"""

USER_UNIT = """\
# chime: the reminder daemon in your desktop session (notifications on the session bus, speech
# through your PipeWire/PulseAudio). Written by `chime service install --user`.
# To run it without a login too: loginctl enable-linger $USER

[Unit]
Description=chime reminder daemon (desktop session)
# A user unit cannot order after time-sync.target (a system unit): chime waits for a
# synchronised clock by itself ([daemon] wait_for_time_sync).
After=graphical-session.target pipewire-pulse.socket pulseaudio.socket

[Service]
Type=notify
ExecStart={exec_start}
ExecReload=/bin/kill -HUP $MAINPID
WatchdogSec=60s
TimeoutStartSec=90s
TimeoutStopSec=90s
Restart=on-failure
RestartSec=10s
RestartPreventExitStatus=73
OOMPolicy=continue
MemoryHigh=3584M
MemoryMax=4G
{user_sandbox}
[Install]
WantedBy=default.target
"""

WEB_SYSTEM_UNIT = """\
# chime-web: the page and JSON API (`chime web`) for a phone or laptop, beside chime.service.
# Written by `chime service install --web`; it serves the daemon's database (/var/lib/chime) as
# the same `chime` user, on 127.0.0.1:8765 unless /etc/chime/config.toml says otherwise
# ([web] listen = "0.0.0.0"). Beyond loopback every request needs the token; print it with
#   sudo -u chime CHIME_DB=/var/lib/chime/chime.db XDG_CONFIG_HOME=/etc chime web token

[Unit]
Description=chime web page and JSON API
After=network-online.target chime.service
Wants=network-online.target

[Service]
Type=exec
ExecStart={exec_start}
TimeoutStopSec=30s
Restart=on-failure
RestartSec=5s
# A preview may start the model worker: the same memory limits as chime.service.
OOMPolicy=continue
MemoryHigh=3584M
MemoryMax=4G

{account}
# Hardening: as chime.service, without devices; `systemd-analyze security` rates it 1.3 (OK).
{hardening}# Not set, on purpose:
#   MemoryDenyWriteExecute=   a preview's model worker generates code at run time (torch int8)
#   ProcSubset=pid            the status page reads /proc/meminfo
{devices}
[Install]
WantedBy=multi-user.target
"""

WEB_CPU_DEVICES = """\
# Devices: none. On a Jetson running the GPU backend, install with --gpu (previews then reach
# /dev/nvhost-*, /dev/nvmap and /dev/nvgpu/* through the `video` group).
PrivateDevices=yes
"""

WEB_USER_UNIT = """\
# chime-web: the page and JSON API (`chime web`) in your session, beside chime.service.
# Written by `chime service install --web --user`; it serves your database on 127.0.0.1:8765
# unless ~/.config/chime/config.toml says otherwise ([web] listen).

[Unit]
Description=chime web page and JSON API (desktop session)
After=chime.service

[Service]
Type=exec
ExecStart={exec_start}
TimeoutStopSec=30s
Restart=on-failure
RestartSec=5s
OOMPolicy=continue
MemoryHigh=3584M
MemoryMax=4G
{user_sandbox}
[Install]
WantedBy=default.target
"""

# Where the copies in systemd/ point: the documented install locations.
DEFAULT_SYSTEM_EXEC = "/opt/chime/venv/bin/chime run"
DEFAULT_USER_EXEC = "%h/.local/bin/chime run"
DEFAULT_WEB_SYSTEM_EXEC = "/opt/chime/venv/bin/chime web"
DEFAULT_WEB_USER_EXEC = "%h/.local/bin/chime web"
SERVICE_GROUPS = ("audio", "jtop", "video")
HIDDEN_BY_PROTECT_HOME = ("/home/", "/root/", "/run/user/")


def render_unit(exec_start: str, *, user: bool = False, gpu: bool = False,
                web: bool = False) -> str:
    """The unit text with this ExecStart (already in systemd syntax); ``web``: chime-web."""
    if web and user:
        return WEB_USER_UNIT.format(exec_start=exec_start, user_sandbox=USER_SANDBOX)
    if user:
        return USER_UNIT.format(exec_start=exec_start, user_sandbox=USER_SANDBOX)
    if web:
        return WEB_SYSTEM_UNIT.format(exec_start=exec_start, account=ACCOUNT, hardening=HARDENING,
                                      devices=GPU_DEVICES if gpu else WEB_CPU_DEVICES)
    devices = GPU_DEVICES if gpu else CPU_DEVICES
    return SYSTEM_UNIT.format(exec_start=exec_start, account=ACCOUNT, devices=devices,
                              hardening=HARDENING)


def exec_start(python: str | None = None, command: str = "run") -> str:
    """ExecStart for this install: the venv's ``chime`` script, else ``python -m daemon``."""
    py = Path(os.path.abspath(python or sys.executable))
    script = py.parent / "chime"
    if script.is_file() and os.access(script, os.X_OK):
        return f"{systemd_word(str(script))} {command}"
    return f"{systemd_word(str(py))} -m daemon {command}"


def systemd_word(word: str) -> str:
    """Quote one argument for ExecStart: escape specifiers and variables, quote whitespace."""
    word = word.replace("%", "%%").replace("$", "$$")
    if re.search(r"[\s\"'\\;]", word):
        return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return word


def has_jetson_gpu(dev: Path = Path("/dev")) -> bool:
    """True on a Jetson whose GPU nodes are present (L4T r32 and r36 names)."""
    return (dev / "nvmap").exists() or (dev / "nvhost-ctrl-gpu").exists()


def unit_name(web: bool = False) -> str:
    return "chime-web.service" if web else "chime.service"


def unit_path(user: bool, web: bool = False) -> Path:
    if user:
        base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
        return Path(base) / "systemd" / "user" / unit_name(web)
    return Path("/etc/systemd/system") / unit_name(web)


def next_steps(user: bool, path: Path, web: bool = False) -> list[str]:
    """The shell lines that create the user (system unit) and enable the service."""
    name = unit_name(web)
    short = name.removesuffix(".service")
    if user:
        return [
            "systemctl --user daemon-reload",
            f"systemctl --user enable --now {name}",
            f"systemctl --user status {name}".ljust(41) + f"# journalctl --user -u {short} -f",
            "loginctl enable-linger $USER              # optional: run without a login",
        ] + (["chime web token                           # the token and URL for a phone"]
             if web else [])
    groups = [g for g in SERVICE_GROUPS if _group_exists(g)]
    add = "--groups " + ",".join(groups) + " " if groups else ""
    lines = [
        f"getent passwd chime >/dev/null || sudo useradd --system --user-group {add}"
        "--home-dir /var/lib/chime --shell /usr/sbin/nologin chime",
    ]
    if groups:
        lines.append(f"sudo usermod -aG {','.join(groups)} chime")
    if path != unit_path(False, web):
        lines.append(f"sudo install -m 0644 {path} /etc/systemd/system/{name}")
    lines += [
        "sudo systemctl daemon-reload",
        f"sudo systemctl enable --now {name}",
        f"systemctl status {name}".ljust(42) + f"# journalctl -u {short} -f",
    ]
    if web:
        lines.append("sudo -u chime CHIME_DB=/var/lib/chime/chime.db XDG_CONFIG_HOME=/etc "
                     "chime web token   # the token and URL for a phone")
    else:
        lines.append("sudo usermod -aG chime $USER              # optional: chime add with "
                     "CHIME_DB=/var/lib/chime/chime.db")
    return lines


def _group_exists(name: str) -> bool:
    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


@click.group()
def service() -> None:
    """Run chime as a systemd service."""


@service.command()
@click.option("--user", "user", is_flag=True,
              help="A user unit for a desktop session (default: a system unit).")
@click.option("--print", "to_stdout", is_flag=True,
              help="Print the unit on stdout instead of writing it (the steps go to stderr).")
@click.option("--gpu/--no-gpu", default=None,
              help="Let the system unit reach the Jetson GPU (default: when /dev/nvmap exists).")
@click.option("--output", "output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the unit to this file instead of the systemd directory.")
@click.option("--web", "web", is_flag=True,
              help="chime-web.service: the page and JSON API (`chime web`), beside the daemon.")
def install(user: bool, to_stdout: bool, gpu: bool | None, output: Path | None,
            web: bool) -> None:
    """Write chime.service (or chime-web.service) and print the systemctl lines to enable it."""
    command = exec_start(command="web" if web else "run")
    program = Path(sys.executable).parent
    if not user and str(program).startswith(HIDDEN_BY_PROTECT_HOME):
        raise InputError(
            f"{program} is under a home directory, which the system unit hides "
            "(ProtectHome=yes): install chime into /opt/chime/venv, or use --user")
    text = render_unit(command, user=user, gpu=has_jetson_gpu() if gpu is None else gpu, web=web)
    path = output or unit_path(user, web)
    if to_stdout:
        click.echo(text, nl=False)
        click.echo("\n".join(["# then:", *next_steps(user, path, web)]), err=True)
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        hint = "" if user else f" (run it with sudo, or use --print > {unit_name(web)})"
        raise ChimeError(f"cannot write {path}: {exc.strerror or exc}{hint}") from exc
    click.echo(f"wrote {path}")
    click.echo("next:")
    for line in next_steps(user, path, web):
        click.echo(f"  {line}")
