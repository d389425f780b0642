"""Errors memcc reports to its users.

Every failure a user can cause (bad file, bad flag, nothing to map) is a MemccError with a message
that reads as one line; the CLI prints it and exits non-zero, without a traceback.
"""


class MemccError(Exception):
    """A problem with the user's input or settings, explained in the message."""


class ModelLoadError(MemccError):
    """The model file is missing, is not ONNX, is corrupt, or is not a valid graph."""


class ConfigError(MemccError):
    """A flag, a TOML setting or a keyword argument has a value memcc cannot use."""


class NothingToMapError(MemccError):
    """The model holds no Gemm, MatMul or Conv with constant weights that memcc can map."""
