"""Secret scrubbing: no password of a URL reaches MLflow, the console, a log line or a file
that Hydra keeps beside a job."""

from __future__ import annotations

import logging
import os
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path
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


def scrub_files(paths: Iterable[Path]) -> list[Path]:
    """Each file of `paths` that holds a URL's password rewritten with it as `***`; the files
    rewritten. The new text replaces the old at once (a reader sees one or the other, never a
    half-written file); a path that is not there is passed over."""
    rewritten = []
    for path in paths:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            continue
        clean = scrub(text)
        if clean == text:
            continue
        # A name of its own per writer: the jobs of a sweep may scrub its multirun.yaml at once.
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(clean)
        os.chmod(temporary, path.stat().st_mode & 0o777)  # as readable as it was, no more
        os.replace(temporary, path)
        rewritten.append(path)
    return rewritten


def scrub_yaml_files(directory: Path) -> list[Path]:
    """The YAML files in `directory` (what Hydra keeps of a job or a sweep there) scrubbed."""
    return scrub_files(sorted(directory.glob("*.yaml")))


def redact_logs() -> None:
    """Every log record from now on (Hydra's sweep listing, MLflow's warnings, ours) with
    credentials in URLs redacted.

    What it touches: the process's log record factory (`logging.setLogRecordFactory`), the
    one place every record passes through before any handler; Hydra replaces the handlers
    when it configures a job's logging, so a filter on them would not last. Only the command
    line installs it (`guards.OutputGuard` and `SecretsAtRest`, Hydra callbacks of its jobs); a
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
