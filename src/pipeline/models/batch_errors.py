"""The two ways a batched fit of the folds gives way to one fit after another: the folds cannot
be batched (:class:`NotBatchable`), or a fold diverged (:class:`Diverged`). Torch-free."""

from __future__ import annotations

from pipeline.errors import PipelineError


class NotBatchable(PipelineError):
    """These folds cannot be trained as one batched model; ``reason`` says why, in a few words."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Diverged(PipelineError):
    """A fold's training loss became NaN or infinite (the message says which epoch, and what to
    change), as the sequential fit says it."""
