"""The one exception type the command line turns into a one-line message."""


class KdsnnError(Exception):
    """A user-facing error: bad input, a missing file, an unsupported model.

    The CLI prints ``kdsnn: error: <message>`` and exits with status 2, never a traceback,
    so the message must say what is wrong and what to do about it.
    """
