"""Secret scrubbing: no password of a URL reaches MLflow, the console or a log line."""

from __future__ import annotations

import logging
import re
from typing import Any

# The password in any `scheme://user:password@host` within a text (Hydra's listing of a
# sweep's overrides escapes the colons: `http\://user\:password@host`).
_CREDENTIALS = re.compile(
    r"(?P<start>[A-Za-z][A-Za-z0-9+.-]*\\?://[^\s:/@\\]*)(?P<colon>\\?:)[^\s/@]*@")


def scrub(text: str) -> str:
    """`text` with the password of every URL in it replaced by `***`."""
    return _CREDENTIALS.sub(r"\g<start>\g<colon>***@", text)


def redact(uri: str) -> str:
    """The URI without a password, fit to print (the user name stays)."""
    return scrub(uri)


def redact_logs() -> None:
    """Every log record from now on (Hydra's sweep listing, MLflow's warnings, ours) with
    credentials in URLs redacted.

    What it touches: the process's log record factory (`logging.setLogRecordFactory`), the
    one place every record passes through before any handler; Hydra replaces the handlers
    when it configures a job's logging, so a filter on them would not last. Only the command
    line installs it (`sweeps.OutputGuard`, a Hydra callback of the process it owns); a
    program that calls `runner.run` itself keeps its logging as it is. Installed once,
    whatever the number of calls; records without an `@` pass unchanged."""
    factory = logging.getLogRecordFactory()
    if getattr(factory, "redacts", False):
        return

    def redacting(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a malformed record: logging's to report, later
            return record
        if "@" in message:
            record.msg, record.args = scrub(message), None
        return record

    redacting.redacts = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(redacting)
