"""The one error a DS's run fails with on purpose."""


class WorkflowError(RuntimeError):
    """The run cannot count; the message says which owner and why."""
