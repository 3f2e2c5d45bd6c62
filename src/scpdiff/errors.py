"""Errors raised for bad user input; the CLI prints them without a traceback and exits non-zero."""


class ScpdiffError(Exception):
    """A user-facing error: bad input file, bad config, missing model. The message names the file."""


class InputError(ScpdiffError, ValueError):
    """Input data (a mask, an image, a latent file) is malformed."""


class ConfigError(ScpdiffError, ValueError):
    """A benchmark or workflow configuration is invalid."""
