"""Helper processes of a run (decoding workers, the ONNX conversion): Ctrl-C is their parent's, and they die with it."""

import contextlib
import ctypes
import signal

PR_SET_PDEATHSIG = 1  # prctl(2): the signal this process gets when its parent dies


def become_child() -> None:
    """Ignore SIGINT and SIGTERM (the parent handles them and ends this process) and be killed (SIGKILL) when the
    parent dies, even by SIGKILL or out of memory: a lingering child would hold copies of its parent's pipes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
