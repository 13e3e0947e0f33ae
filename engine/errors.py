"""The exceptions users see: a plain sentence, no traceback."""


class SegueError(Exception):
    """Bad input or a missing resource, explained in one line for the user."""


class ParameterError(SegueError):
    """A bad value of one named parameter. The message begins with the parameter's name as
    the engine and the HTTP API call it (`measures 9-12 is outside ...`); the CLI shows that
    name as its option (`--measures 9-12 is outside ...`, `flag_message`)."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"{parameter} {message}")
        self.parameter = parameter

    def flag_message(self) -> str:
        """The message with the parameter written as a command-line option."""
        return "--" + self.parameter.replace("_", "-") + str(self)[len(self.parameter):]
