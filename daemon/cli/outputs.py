"""Commands for outputs: list them, and send a sample reminder through one."""

from __future__ import annotations

import importlib
from typing import Any

import click

from daemon.cli import echo_json, get_app
from daemon.errors import ChimeError, InputError
from daemon.outputs import base as outputs

SAMPLE_TASK = "测试提醒"
SAMPLE_MESSAGE = "这是一条来自 chime 的测试提醒，听到或看到就说明这个输出能用。"


def describe(name: str) -> str:
    """The first line of the output module's docstring (or why it cannot be loaded)."""
    module_name = outputs.REGISTRY[name].partition(":")[0]
    try:
        doc = importlib.import_module(module_name).__doc__ or ""
    except ImportError as exc:
        return f"unavailable: {exc}"
    return doc.strip().splitlines()[0] if doc.strip() else ""


@click.command(name="outputs")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def list_outputs(as_json: bool) -> None:
    """List the known outputs; '*' marks the default ones ([daemon] outputs)."""
    defaults = get_app(click.get_current_context()).settings.daemon.outputs
    items = [{"name": n, "default": n in defaults, "description": describe(n)}
             for n in outputs.available()]
    if as_json:
        echo_json(items)
        return
    for item in items:
        mark = "*" if item["default"] else " "
        click.echo(f"{mark} {item['name']:<8}  {item['description']}")


@click.command(name="test-output")
@click.argument("name")
@click.option("--task", default=SAMPLE_TASK, show_default=True, help="The sample's task.")
@click.option("--message", default=SAMPLE_MESSAGE, help="The sample's text.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def test_output(name: str, task: str, message: str, as_json: bool) -> None:
    """Send a sample reminder through output NAME and report the result (exit 1 on failure)."""
    from daemon.outputs.base import Reminder

    outputs.check_names([name], InputError)
    app = get_app(click.get_current_context())
    now = app.clock.now().astimezone(app.settings.tz).replace(microsecond=0)
    result: dict[str, Any] = {"output": name}
    try:
        output = outputs.create(name, app.settings, None)
        try:
            result.update(ok=True, detail=output.send(Reminder(None, task, message, now)))
        finally:
            output.close()
    except ChimeError as exc:
        if not as_json:
            raise
        result.update(ok=False, error=str(exc))
    if as_json:
        echo_json(result)
        if not result["ok"]:
            raise SystemExit(1)
        return
    click.echo(f"{name}: {result['detail']}")
