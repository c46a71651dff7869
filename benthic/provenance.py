"""What produced a results file: command, git commit, device, versions and torch's CPU thread count."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
import sys

from benthic.paths import IN_CHECKOUT, ROOT


def provenance(command: str | None = None) -> dict:
    """Command (default: this process's command line), git commit, device, versions and torch's CPU thread
    count (CPU results are bit-reproducible only at the same thread count), for results files."""
    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else cpu_name()
    return {
        "command": command or " ".join(sys.argv),
        "commit": git_commit(),
        "device": device,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "date": now(),
    }


def git_commit() -> str:
    """The checkout's HEAD commit, or 'unknown' when installed (ROOT is then $BENTHIC_HOME or the cwd, not this
    code's repository) or git is missing."""
    if not IN_CHECKOUT:
        return "unknown"
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def cpu_name() -> str:
    """The CPU as results files name it: 'CPU <processor> x<cores>'."""
    return f"CPU {platform.processor() or platform.machine()} x{os.cpu_count()}"


def now() -> str:
    """The UTC time to the second, ISO 8601."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
