"""Version of the otelbench-instrumentation distribution."""

__version__ = "0.1.0"
