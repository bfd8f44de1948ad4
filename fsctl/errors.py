"""Domain errors raised by the library; the CLI turns them into one line and an exit code."""


def first_line(error, default: str | None = None) -> str:
    """The first line of an error (or of a text) for a one-line message; `default`, else the
    error's class name, when it says nothing."""
    text = str(error).strip()
    if text:
        return text.splitlines()[0]
    return default if default is not None else error.__class__.__name__


class FsctlError(Exception):
    """Base of every error fsctl reports to a user."""

    exit_code = 1

    def __init__(self, message):
        super().__init__(message)
        self.message = message

    def __str__(self):
        return self.message


class ValidationError(FsctlError):
    """Bad input: names the field, the value and the rule."""

    exit_code = 2

    def __init__(self, field, value, rule):
        self.field, self.value, self.rule = field, value, rule
        super().__init__(f"{field} {_show(value)}: {rule}")


class NotFoundError(FsctlError):
    """A named thing does not exist (bad input)."""

    exit_code = 2

    def __init__(self, kind, key, where=None, hint=None):
        self.kind, self.key = kind, key
        text = f'{kind} "{key}" does not exist'
        if where:
            text += f" in {where}"
        if hint:
            text += f" ({hint})"
        super().__init__(text)


class ConflictError(FsctlError):
    """The change collides with existing data (duplicate number, still referenced...)."""

    exit_code = 2


class ConfigError(FsctlError):
    """fsctl's own configuration (file, environment) is wrong."""

    exit_code = 2


class OperationError(FsctlError):
    """An operation failed at run time (apply refused by FreeSWITCH, I/O error...)."""

    exit_code = 1


class UnreachableError(FsctlError):
    """FreeSWITCH or an SFTP server cannot be reached."""

    exit_code = 3


def _show(value):
    """Quote a value for an error message, keeping it on one line."""
    text = str(value)
    if len(text) > 80:
        text = text[:77] + "..."
    text = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    return f'"{text}"'
