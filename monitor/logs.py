"""structlog setup: JSON lines on stdout (console when a terminal), stdlib logs routed through it,
and a redaction processor as the second line of defence for secrets."""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from monitor.redact import SecretSet, redact_text

# Every secret key the process has read. The redaction processor replaces any of them that reaches
# a log line; code paths are written so that none ever does, this only catches mistakes.
_SECRETS = SecretSet()


def register_secret(value: str) -> None:
    _SECRETS.add(value)


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return _SECRETS.scrub(redact_text(value)) if _SECRETS else redact_text(value)
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def _timestamp(_logger: WrappedLogger, _name: str, event_dict: EventDict) -> EventDict:
    """ISO-8601 UTC time of the line, unless the line brings its own (alert events do)."""
    if "timestamp" not in event_dict:
        event_dict["timestamp"] = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return event_dict


def _event_first(_logger: WrappedLogger, _name: str, event_dict: EventDict) -> EventDict:
    """Put ``event`` first in the line: it is what a person scanning logs reads first."""
    if "event" in event_dict:
        return {"event": event_dict.pop("event"), **event_dict}
    return event_dict


def redact_processor(_logger: WrappedLogger, _name: str, event_dict: EventDict) -> EventDict:
    """Redact URL query values, user-info and known secret keys in every string of a log line."""
    for key, value in event_dict.items():
        if key == "exc_info":
            continue
        event_dict[key] = _clean(value)
    return event_dict


def _render_exception(_logger: WrappedLogger, _name: str, event_dict: EventDict) -> EventDict:
    """Render exc_info to text, then redact it: tracebacks carry request URLs and their UserSig."""
    event_dict = structlog.processors.format_exc_info(_logger, _name, event_dict)
    if "exception" in event_dict:
        event_dict["exception"] = _clean(event_dict["exception"])
    return event_dict


class _SkippedRunIsDebug(logging.Filter):
    """APScheduler warns whenever a run is due while the app's previous check still runs. With
    ``max_instances=1`` that skip is the intended back-pressure, and while the API is slow it would
    be one warning per app per interval: demote it to debug."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self._level = level

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.WARNING and "maximum number of running instances" in record.getMessage():
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return self._level <= logging.DEBUG
        return True


def configure(*, fmt: str | None = None, level: str = "info", stream: TextIO | None = None) -> None:
    """Set up structlog and the stdlib root logger. ``fmt``: "json", "console" or None (auto)."""
    stream = stream if stream is not None else sys.stdout
    if fmt is None:
        fmt = "console" if stream.isatty() else "json"
    renderer: Processor
    if fmt == "console":
        renderer = structlog.dev.ConsoleRenderer(colors=stream.isatty())
    else:
        renderer = structlog.processors.JSONRenderer(sort_keys=False)
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        _timestamp,
        _render_exception,
        redact_processor,
    ]
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                _event_first,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    # APScheduler logs every job run at INFO; keep its warnings (missed runs) and errors only.
    logging.getLogger("apscheduler").setLevel(max(numeric, logging.WARNING))
    scheduler_logger = logging.getLogger("apscheduler.scheduler")
    for old in [f for f in scheduler_logger.filters if isinstance(f, _SkippedRunIsDebug)]:
        scheduler_logger.removeFilter(old)
    scheduler_logger.addFilter(_SkippedRunIsDebug(numeric))
    # Access logs are written by the web module for the pages people open; probes stay quiet.
    logging.getLogger("aiohttp.access").setLevel(max(numeric, logging.INFO))
