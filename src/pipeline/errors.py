"""The one error type for user mistakes, and the interrupt that says what it left behind."""


class PipelineError(Exception):
    """A mistake in the user's config, data or environment, explained in one line.

    The message says what is wrong and how to fix it; the command line prints it without a
    traceback and exits non-zero.
    """


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a job, after its runs were marked KILLED; the message says where the
    partial results are. The command line prints it and exits with status 130."""
