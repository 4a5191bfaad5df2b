"""The errors a user can fix, which the tools answer with one line."""


class InputError(ValueError):
    """A bad configuration or bad data: the message says what was wrong
    and what is accepted."""


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be loaded safely."""


class InvalidLossError(FloatingPointError):
    """The training loss became NaN or infinite."""
