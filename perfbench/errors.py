"""The one error hierarchy of perfbench, and the exit codes the CLI maps it to.

    PerfbenchError                  anything perfbench refuses or cannot do (exit 1)
    ├── ConfigError                 bad input: a field, a value, a file (exit 2); also a ValueError
    │   ├── UnsafeTargetError       a target outside loopback that was not allow-listed (exit 2)
    │   └── FrameError              a frame of the wrong type or shape handed to a chart (exit 2); also a TypeError
    ├── ProfilerError               a profiler or collector could not watch its target (the load goes on; exit 1)
    ├── RunDirError                 a run directory that is missing, corrupt or of an unknown schema (exit 3)
    ├── TargetError                 the target could not be started or reached at all (exit 4)
    └── ExperimentError             a notebook failed while papermill ran it (exit 5)

    SLOBreached (exit 10) is not an error of perfbench: the run worked, the service broke its SLO.

Messages name what is wrong and what would be right, in one line, so the CLI can print them
without a traceback. Library code raises; only ``perfbench.cli`` turns these into exit codes.
"""

from __future__ import annotations


class PerfbenchError(Exception):
    """Base class: perfbench refused or could not do what was asked."""

    exit_code = 1


class ConfigError(PerfbenchError, ValueError):
    """Bad input. ``problems`` lists every problem found, so the user fixes them all at once.

    Also a ``ValueError``, so code that catches the built-in for a bad value keeps working.
    """

    exit_code = 2

    def __init__(self, message: str, problems: list[str] | None = None):
        self.problems = list(problems or [])
        if self.problems:
            message = message + ": " + "; ".join(self.problems)
        super().__init__(message)


class UnsafeTargetError(ConfigError):
    """The target is not on loopback and its host is not in the allow-list."""


class FrameError(ConfigError, TypeError):
    """A chart or analysis was given something other than the frame it takes (also a ``TypeError``)."""


class ProfilerError(PerfbenchError, RuntimeError):
    """A profiler or collector could not start or read what it watches; the run records it and goes on."""


class RunDirError(PerfbenchError):
    """A run directory that cannot be read as the contract says."""

    exit_code = 3


class TargetError(PerfbenchError):
    """The target could not be started or reached."""

    exit_code = 4


class ExperimentError(PerfbenchError):
    """An experiment notebook failed."""

    exit_code = 5


class SLOBreached(Exception):
    """The run completed and at least one SLO was broken."""

    exit_code = 10


class RegressionFound(SLOBreached):
    """A comparison found a regression beyond a rule's threshold with the stated confidence (exit 10, as SLOs)."""

    exit_code = 10
