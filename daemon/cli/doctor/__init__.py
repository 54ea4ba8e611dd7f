"""``chime doctor``: what works on this machine, and a one-line fix for what does not.

Every check returns ok / warning / error; an error means chime cannot do its job (bad config,
unwritable database, an output you enabled that cannot work), a warning that it degrades
(template text instead of the model, no weather word, no temperature guard). A check that
crashes is reported as a warning, never as a traceback. The location is redacted.

The command lives here, the report and its parts in ``report.py``; the checks in ``model.py``
(torch, GPU, int8, model files, memory) and ``system.py`` (Python, sensors, outputs (desktop,
speaker, ntfy), database, daemon, weather, clock).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from daemon.cli import echo_json
from daemon.cli.doctor.report import ERROR, OK, REDACTED, WARNING, Check, Doctor, Report
from daemon.errors import ChimeError

if TYPE_CHECKING:
    from daemon.config import Settings


def run(config: str | None = None, db: str | None = None, hashes: bool = False) -> Report:
    """Run every check; never raises for what it finds."""
    from daemon.config import load_settings

    checks: list[Check] = []
    settings: Settings | None = None
    try:
        settings = load_settings(config, db)
    except ChimeError as exc:
        checks.append(Check("config", ERROR, str(exc), "correct the named keys and run again"))
    else:
        where = str(settings.config_path) if settings.config_path else "defaults (no config file)"
        checks.append(Check("config", OK, where))
    doc = Doctor(settings, hashes)
    quiet = logging.getLogger("daemon")  # the checks report what the modules would log
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        checks += _checks(doc)
    finally:
        quiet.setLevel(level)
    return Report(checks, redacted_config(settings))


def _checks(doc: Doctor) -> list[Check]:
    from daemon.cli.doctor import model, system

    every: list[tuple[Callable[[Doctor], Check], bool]] = [  # (check, needs the settings)
        (system.check_python, False), (model.check_torch, False), (model.check_gpu, False),
        (model.check_int8, False), (model.check_model_files, True), (model.check_memory, True),
        (system.check_sensors, True), (system.check_desktop, False),
        (system.check_speaker, True), (system.check_ntfy, True), (system.check_database, True),
        (system.check_daemon, True), (system.check_weather, True), (system.check_clock, False),
        (system.check_workdays, True),
    ]
    checks = []
    for func, needs_settings in every:
        if doc.settings is None and needs_settings:
            continue
        try:
            checks.append(func(doc))
        except Exception as exc:  # a check must not crash the doctor
            name = func.__name__.removeprefix("check_").replace("_", " ")
            checks.append(Check(name, WARNING, f"could not check: {type(exc).__name__}: {exc}"))
    return checks


def redacted_config(s: Settings | None) -> dict[str, Any]:
    if s is None:
        return {}
    located = s.location.latitude is not None
    webhook = s.webhook.url.split("//", 1)[-1].split("/", 1)[0] if s.webhook.url else ""
    return {
        "database": str(s.db_path),
        "timezone": s.daemon.timezone,
        "outputs": s.daemon.outputs,
        "location": {"latitude": REDACTED if located else None,
                     "longitude": REDACTED if located else None,
                     "name": REDACTED if s.location.name else ""},
        "model": {"enabled": s.model.enabled, "base": s.model.base, "adapter": s.model.adapter,
                  "backend": s.model.backend, "device": s.model.device,
                  "models_dir": str(s.models_dir)},
        "webhook": webhook,
    }


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--hashes", is_flag=True,
              help="Also compute the SHA-256 of large model files (slow on a board).")
def doctor(as_json: bool, hashes: bool) -> None:
    """Check what works on this machine, each problem with a one-line fix."""
    lazy = click.get_current_context().find_root().obj
    report = run(config=lazy.config, db=lazy.db, hashes=hashes)
    if as_json:
        echo_json(report.as_dict())
    else:
        click.echo(report.as_text())
    if not report.ok:
        sys.exit(1)
