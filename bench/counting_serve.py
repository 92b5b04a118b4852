"""`oudertelefoon serve` with its database commits counted, for bench/webhook_reply.

Every SQLAlchemy engine in the process is watched ("commit", "begin" and statement events), and
every Redis command is counted (redis-py's `execute_command`); the totals are
written as JSON to the file named by OT_BENCH_COUNTS several times a second, so the bench can
read them before and after a phase. Nothing else changes: the arguments go to `bot.cli`.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import event
from sqlalchemy.engine import Engine

COUNTS = {"commits": 0, "begins": 0, "statements": 0, "redis": 0}
_LOCK = threading.Lock()


@event.listens_for(Engine, "commit")
def _commit(_connection: Any) -> None:
    with _LOCK:
        COUNTS["commits"] += 1


@event.listens_for(Engine, "begin")
def _begin(_connection: Any) -> None:
    with _LOCK:
        COUNTS["begins"] += 1


@event.listens_for(Engine, "before_cursor_execute")
def _statement(*_args: Any) -> None:
    with _LOCK:
        COUNTS["statements"] += 1


def _count_redis() -> None:
    import redis

    original = redis.Redis.execute_command

    def counted(self: Any, *args: Any, **options: Any) -> Any:
        with _LOCK:
            COUNTS["redis"] += 1
        return original(self, *args, **options)

    redis.Redis.execute_command = counted  # type: ignore[method-assign]


def _write(path: Path) -> None:
    while True:
        with _LOCK:
            data = json.dumps(COUNTS)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(data)
        tmp.replace(path)
        time.sleep(0.1)


if __name__ == "__main__":
    target = os.environ.get("OT_BENCH_COUNTS")
    if target:
        threading.Thread(target=_write, args=(Path(target),), daemon=True).start()
        _count_redis()
    from bot.cli import main

    sys.exit(main(sys.argv[1:]))
