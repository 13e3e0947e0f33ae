"""The one exception type users see: a plain sentence, no traceback."""


class SegueError(Exception):
    """Bad input or a missing resource, explained in one line for the user."""
