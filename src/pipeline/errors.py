"""The one error type for user mistakes: the runner prints its message as a single line."""


class PipelineError(Exception):
    """A mistake in the user's config, data or environment, explained in one line.

    The message says what is wrong and how to fix it; the command line prints it without a
    traceback and exits non-zero.
    """
