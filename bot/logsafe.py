"""No parent's words in a log line: the last line of defence (issue 12).

The first lines of defence are where text could enter a log: the engine hides bound parameters
(bot.storage.db), request-validation errors are answered and never logged with their input
(bot.web.hardening), and our own log lines carry ids and type names only. This module catches
what slips past those, for every record of every logger, at the moment the record is made:
`install()` puts a LogRecord factory in place (so every handler, including pytest's caplog and
uvicorn's own handlers, only ever sees the cleaned record) and replaces sys.excepthook and
threading.excepthook (a crash that escapes to the top prints the same cleaned traceback).

What is cleaned, and how:

1. Exceptions that carry other people's data by design keep their type and traceback, but their
   message is replaced by a safe summary: database errors (SQLAlchemy's StatementError, any
   psycopg or sqlite3 error: PostgreSQL's DETAIL quotes the failing row) keep the SQLSTATE or
   SQLite error name and the parameterised SQL; validation errors (pydantic, FastAPI) keep the
   location and error type of each problem, never the `input`. This holds for the whole chain
   (`__cause__`, `__context__`) and for exceptions passed as log arguments.
2. SQLAlchemy's engine logging (echo, or the `sqlalchemy.engine` logger at INFO/DEBUG) shows
   parameters and result rows: those arguments are replaced.
3. The texts being handled right now: every InboundMessage registers its text with `hold()` in
   a context variable (each request, task and worker thread has its own; it is bounded and dies
   with the request). A record whose message, exception text or notes contain one of them is
   withheld: level, logger, file and line stay, the words go. Matching is on a skeleton (only
   letters and digits, case-folded), whole for short texts and in overlapping windows for long
   ones, so a quote that is escaped (repr), truncated or cut in the middle is still caught.
   Texts with fewer than MIN_CHARS letters and digits ("ja", "1") are not matched.
"""

from __future__ import annotations

import logging
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from types import TracebackType
from typing import Any

WITHHELD = "[log line withheld: it contained a parent's words]"
MIN_CHARS = 6
WINDOW = 16
MAX_HELD = 8  # texts remembered per context (a long-lived poll loop does not accumulate)

_held: ContextVar[tuple[tuple[str, ...], ...]] = ContextVar("ot_held_texts", default=())
_previous_factory: Callable[..., logging.LogRecord] | None = None

# Modules whose exceptions quote the data they were given (rows, parameters, input).
_DATA_MODULES = ("psycopg", "psycopg2", "psycopg_binary", "sqlite3", "_sqlite3", "asyncpg",
                 "pydantic", "pydantic_core")


def skeleton(text: str) -> str:
    """Only letters and digits, case-folded: what survives repr(), escaping and truncation."""
    return "".join(char for char in text.casefold() if char.isalnum())


def needles(text: str) -> tuple[str, ...]:
    """What to look for in a log line for `text`: its skeleton, or windows of it if long."""
    skel = skeleton(text)
    if len(skel) < MIN_CHARS:
        return ()
    if len(skel) <= 2 * WINDOW:
        return (skel,)
    step = WINDOW // 2
    return tuple(dict.fromkeys(skel[i:i + WINDOW] for i in range(0, len(skel) - WINDOW + 1, step)))


def hold(text: str) -> None:
    """`text` (a parent's words) is being handled in this context: keep it out of every log."""
    found = needles(text)
    if found:
        _held.set((*_held.get()[-(MAX_HELD - 1):], found))


@contextmanager
def scope() -> Iterator[None]:
    """Texts held inside the block are forgotten when it ends (a long-lived loop, such as
    `telegram poll`, handles one message after another in one context)."""
    token = _held.set(_held.get())
    try:
        yield
    finally:
        _held.reset(token)


def holds_parent_words(value: str) -> bool:
    """Whether `value` contains one of the texts held in this context."""
    held = _held.get()
    if not held or not value:
        return False
    skel = skeleton(value)
    return any(needle in skel for found in held for needle in found)


# Exceptions --------------------------------------------------------------------------------

def _is_data_exception(error: BaseException) -> bool:
    for cls in type(error).__mro__:
        module = cls.__module__.split(".")[0]
        if module in _DATA_MODULES:
            return True
        if cls.__module__ == "sqlalchemy.exc" and cls.__name__ == "StatementError":
            return True
        if cls.__module__.startswith(("fastapi", "starlette")) and "ValidationError" in cls.__name__:
            return True
    return False


def _problems(error: BaseException) -> str:
    """pydantic / FastAPI validation errors: where and what, never the input."""
    try:
        errors = error.errors()  # type: ignore[attr-defined]
        parts = [f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('type', '?')}"
                 for e in list(errors)[:10]]
    except Exception:  # noqa: BLE001 - any shape we do not know: say nothing, never raise
        return "details withheld"
    parts = [part if not holds_parent_words(part) else "(withheld)" for part in parts]
    return f"{len(errors)} problem(s): " + "; ".join(parts)


def safe_description(error: BaseException) -> str:
    """The message of `error` as it may be logged."""
    if _is_data_exception(error):
        if hasattr(error, "errors") and callable(error.errors):
            return _problems(error)
        orig = getattr(error, "orig", None)
        source = orig if isinstance(orig, BaseException) else error
        code = (getattr(source, "sqlstate", None) or getattr(source, "pgcode", None)
                or getattr(source, "sqlite_errorname", None))
        words = f"{type(source).__module__}.{type(source).__name__}"
        if code:
            words += f" ({code})"
        statement = getattr(error, "statement", None)
        if isinstance(statement, str) and not holds_parent_words(statement):
            words += f"; SQL: {statement[:300]}"
        return words + " (details withheld: they can hold a parent's words)"
    try:
        text = str(error)
    except Exception:  # noqa: BLE001 - an exception's own __str__ may raise anything
        return "(unprintable)"
    return "(message withheld: it contained a parent's words)" if holds_parent_words(text) else text


def _pairs(te: traceback.TracebackException,
           error: BaseException) -> Iterator[tuple[traceback.TracebackException, BaseException]]:
    """Each TracebackException of the chain with the exception it was made from."""
    seen: set[int] = set()
    stack = [(te, error)]
    while stack:
        node, exc = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        yield node, exc
        if node.__cause__ is not None and exc.__cause__ is not None:
            stack.append((node.__cause__, exc.__cause__))
        if node.__context__ is not None and exc.__context__ is not None:
            stack.append((node.__context__, exc.__context__))
        for sub_node, sub_exc in zip(getattr(node, "exceptions", None) or (),
                                     getattr(exc, "exceptions", None) or (), strict=False):
            stack.append((sub_node, sub_exc))


def format_exception(exc_type: type[BaseException] | None, error: BaseException | None,
                     tb: TracebackType | None) -> str:
    """The traceback as `logging` would print it, every message in the chain made safe."""
    if error is None:
        return "".join(traceback.format_exception(exc_type, error, tb))
    te = traceback.TracebackException(type(error), error, tb, compact=True)
    # TracebackException keeps each exception's text in `_str` and its notes in `__notes__`
    # (Python 3.11-3.13).
    for node, original in _pairs(te, error):
        node._str = safe_description(original)  # type: ignore[attr-defined]
        notes = getattr(node, "__notes__", None)
        if notes and any(holds_parent_words(str(note)) for note in notes):
            node.__notes__ = ["(note withheld: it contained a parent's words)"]
    return "".join(te.format()).rstrip("\n")


# Records -----------------------------------------------------------------------------------

def _clean_args(record: logging.LogRecord) -> None:
    args = record.args
    if not args:
        return
    if record.name.startswith("sqlalchemy.engine") and isinstance(args, tuple):
        if record.msg == "Row %r":
            record.args = ("[row withheld]",)
            return
        if isinstance(record.msg, str) and record.msg.startswith("[%s] %r") and len(args) >= 2:
            record.args = (args[0], "[parameters withheld]", *args[2:])
            return
    if isinstance(args, tuple) and any(isinstance(a, BaseException) for a in args):
        record.args = tuple(safe_description(a) if isinstance(a, BaseException) else a
                            for a in args)
    elif isinstance(args, dict) and any(isinstance(a, BaseException) for a in args.values()):
        record.args = {k: safe_description(a) if isinstance(a, BaseException) else a
                       for k, a in args.items()}


def clean_record(record: logging.LogRecord) -> logging.LogRecord:
    """Make `record` safe in place (see the module docstring) and return it."""
    if isinstance(record.msg, BaseException):
        record.msg = safe_description(record.msg)
    _clean_args(record)
    if record.exc_info and record.exc_info[1] is not None:
        record.exc_text = format_exception(*record.exc_info)
        record.exc_info = None  # every formatter uses exc_text; nobody formats the original
    try:
        message = record.getMessage()
    except Exception:  # noqa: BLE001 - a broken format string (any error): keep nothing
        record.msg, record.args = WITHHELD + " (unformattable)", ()
        return record
    if holds_parent_words(message):
        record.msg, record.args = WITHHELD, ()
    if record.exc_text and holds_parent_words(record.exc_text):
        record.exc_text = WITHHELD
    if record.stack_info and holds_parent_words(record.stack_info):
        record.stack_info = WITHHELD
    return record


def _factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
    assert _previous_factory is not None
    record = _previous_factory(*args, **kwargs)
    try:
        return clean_record(record)
    except Exception:  # noqa: BLE001 - cleaning never breaks logging nor lets a raw record through
        record.msg, record.args, record.exc_info, record.exc_text = WITHHELD, (), None, None
        return record


def _excepthook(exc_type: type[BaseException], error: BaseException,
                tb: TracebackType | None) -> None:
    sys.stderr.write(format_exception(exc_type, error, tb) + "\n")


def _thread_excepthook(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    name = args.thread.name if args.thread is not None else "?"
    sys.stderr.write(f"Exception in thread {name}:\n"
                     + format_exception(args.exc_type, args.exc_value, args.exc_traceback) + "\n")


def install() -> None:
    """Clean every log record and every uncaught exception of this process (idempotent).
    Called by every entry: `oudertelefoon` (serve, worker, telegram poll, every command) and
    create_app (an app served by another runner)."""
    global _previous_factory
    current = logging.getLogRecordFactory()
    if current is not _factory:
        _previous_factory = current
        logging.setLogRecordFactory(_factory)
    sys.excepthook = _excepthook
    threading.excepthook = _thread_excepthook


def installed() -> bool:
    return logging.getLogRecordFactory() is _factory
