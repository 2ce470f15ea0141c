"""User errors: the CLI prints them as one clean line and exits with code 2 (no traceback)."""


class ReasrmError(Exception):
    """A problem with what the user gave us (a config, a data file, a model name), not a bug."""


class ReasrmConfigError(ReasrmError):
    """A config file or override is invalid. The message lists every problem found, one per line."""


class ReasrmDataError(ReasrmError):
    """A data file is unreadable or a row is invalid. The message names file, line and field."""
