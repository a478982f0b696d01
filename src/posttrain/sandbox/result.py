"""How a sandboxed run ended, in terms both backends share."""

from __future__ import annotations

from dataclasses import asdict, dataclass

TAIL_CHARS = 2000
"""Characters of stdout / stderr kept in a result."""


@dataclass
class SandboxResult:
    """`status`: "passed" (exit 0), "failed" (non-zero exit), "timeout" (wall clock),
    "memory" (MemoryError at the address-space limit), "cpu" (CPU limit), "killed" (SIGKILL:
    the hard CPU limit or the OOM killer). `sandbox` names the backend that ran it:
    "bubblewrap" or "subprocess-fallback"."""

    status: str
    returncode: int | None
    seconds: float
    stdout: str = ""
    stderr: str = ""
    sandbox: str = ""

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def to_dict(self) -> dict:
        return asdict(self)


def classify(signal_number: int | None, exit_code: int | None, stderr: str) -> str:
    """The status of a run that ended by itself: killed by `signal_number`, or exited."""
    if signal_number is None and exit_code == 0:
        return "passed"
    if "MemoryError" in stderr:
        return "memory"
    if signal_number == 24:  # SIGXCPU at the soft CPU limit
        return "cpu"
    if signal_number == 9:  # the hard CPU limit or the kernel's OOM killer
        return "killed"
    return "failed"
