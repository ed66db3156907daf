"""The one exception type the CLI turns into a one-line message and a non-zero exit."""


class FerBenchError(Exception):
    """A user-facing error: bad input, missing data, impossible settings.

    The message must stand alone on one line and say what to do about it.
    """
