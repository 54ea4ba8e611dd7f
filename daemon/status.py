"""``chime status`` and the web's status page: one view of what the daemon is doing.

Only cheap facts (no network, no model load): the heartbeat, the next reminders, the guard's
readings and last decisions, the forecast cache's age, whether the model is usable, the
database's size and the free disk space beside it.
"""

from __future__ import annotations

import shutil
from datetime import datetime
from typing import Any

from daemon import reminders
from daemon.parts import Planned
from daemon.store import repo
from daemon.store.models import Forecast


def overview(app: Planned, count: int = 5) -> dict[str, Any]:
    """The daemon's state, its next ``count`` reminders, guard, weather, model and storage."""
    from daemon.generation.guards import describe
    from daemon.generation.supervisor import memory_need_mb, unavailable
    from daemon.service import alive

    now = app.clock.now()
    with app.db.session() as s:
        heartbeat = repo.read_heartbeat(s)
        fetched = [row.fetched_at for row in s.query(Forecast).all()]
    running = alive(heartbeat, app.settings.daemon.heartbeat)
    items = sorted((e for e in reminders.upcoming(app) if e["next"]), key=lambda e: e["next"])
    beat_at = datetime.fromisoformat(heartbeat["at"]) if heartbeat else None
    newest = max(fetched) if fetched else None
    why_not = unavailable(app.settings)
    return {
        "running": running,
        "pid": heartbeat.get("pid") if heartbeat and running else None,
        "heartbeat": heartbeat.get("at") if heartbeat else None,
        "heartbeat_age_s": round((now - beat_at).total_seconds(), 1) if beat_at else None,
        "database": str(app.settings.db_path),
        "clock": heartbeat.get("clock") if heartbeat and running else None,
        "next": [{"id": e["id"], "task": e["task"], "at": e["next"]} for e in items[:count]],
        "guard": describe(app.settings.guards, need_mb=memory_need_mb(app.settings), db=app.db),
        "weather": {
            "fetched_at": newest.isoformat() if newest else None,
            "age_s": round((now - newest).total_seconds()) if newest else None,
        },
        "model": {"usable": why_not is None, "reason": why_not},
        "storage": storage(app),
    }


def storage(app: Planned) -> dict[str, int]:
    """Bytes used by the database (with its WAL) and free on its file system."""
    path = app.settings.db_path
    used = sum(p.stat().st_size for p in (path, path.with_name(path.name + "-wal"))
               if p.exists())
    return {"database_bytes": used, "free_bytes": shutil.disk_usage(path.parent).free}
