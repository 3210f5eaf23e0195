"""`python -m pipeline.doctor [--uri URI] [--dry-run]`: the RUNNING runs that jobs killed
outright left behind, marked KILLED with the reason (the judging is pipeline.tracking.orphans')."""

from __future__ import annotations

import argparse
import logging
import sys
import unicodedata

from pipeline.tracking.orphans import mark_store


def uri_argument(text: str) -> str:
    """`--uri` as the store commands (doctor, compare) take it: a URI that names a store.
    An empty one would quietly become the default store; a control character (a pasted line
    break) names none. Whether the store exists, and MLflow can open it, the store says."""
    if not text.strip():
        raise argparse.ArgumentTypeError(
            "an empty URI names no store; leave --uri out for $MLFLOW_TRACKING_URI or "
            "outputs/mlflow.db")
    if any(unicodedata.category(character) == "Cc" for character in text):
        raise argparse.ArgumentTypeError(
            f"{text!r} holds a control character (a line break or a tab); a store's URI is "
            "one line, e.g. sqlite:///outputs/mlflow.db or http://host:5000")
    return text


def parser() -> argparse.ArgumentParser:
    """The command's arguments (docs/arguments/doctor.md lists what each refuses)."""
    command = argparse.ArgumentParser(
        prog="python -m pipeline.doctor",
        description="Mark KILLED the RUNNING runs whose job was killed outright (SIGKILL, out "
                    "of memory, power loss): made on this host by a process that is gone.")
    command.add_argument("--uri", default=None, type=uri_argument,
                         help="tracking URI (default: $MLFLOW_TRACKING_URI or outputs/mlflow.db)")
    command.add_argument("--dry-run", action="store_true", help="only list what would be marked")
    return command


def main(argv: list[str] | None = None) -> int:
    from mlflow.exceptions import MlflowException

    from pipeline.errors import PipelineError
    from pipeline.tracking.secrets import redact, scrub
    from pipeline.tracking.store import default_uri

    args = parser().parse_args(argv)
    uri = args.uri or default_uri()
    quieted = logging.getLogger("pipeline")
    level = quieted.level
    quieted.setLevel(logging.ERROR)  # the lines below say it all
    try:
        findings = mark_store(uri, dry_run=args.dry_run)
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except MlflowException as error:
        print(f"error: tracking.uri={redact(uri)} cannot be used: "
              f"{scrub(' '.join(str(error).split()))[:300]}", file=sys.stderr)
        return 1
    finally:  # called as a function, it leaves the caller's logging as it found it
        quieted.setLevel(level)
    orphans = [finding for finding in findings if finding.orphan]
    unknown = [finding for finding in findings if finding.orphan is None]
    verb = "would mark" if args.dry_run else "marked"
    print(f"{redact(uri)}: {verb} {len(orphans)} orphaned run(s) KILLED"
          + (f"; {len(unknown)} RUNNING run(s) cannot be judged here" if unknown else ""))
    for finding in orphans:
        print(f"  {verb} KILLED: {finding.describe()}")
    for finding in unknown:
        print(f"  left RUNNING: {finding.describe()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
