"""Write files under a temporary name and rename on success, so nothing half-written is ever left.

A write that fails for want of space or permission (`engine.common.errors.WRITE_ERRNOS`) raises an
OutputError naming the file (exit 3).

The file gets the permissions a user expects: those of the file it replaces, else 0666 minus the umask
(the kernel applies it, as for any new file).
"""

import contextlib
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path

from engine.common.errors import output_error


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside `target`; rename it over `target` only if the block succeeds."""
    target = Path(target)
    with _naming(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp_path = _new_file(target)
    try:
        with _naming(target):
            yield tmp_path
            os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


@contextlib.contextmanager
def _naming(target: Path) -> Iterator[None]:
    """Turn a failed write (disk full, quota, read-only...) into an OutputError naming `target` (exit 3)."""
    try:
        yield
    except OSError as exc:
        error = output_error(exc, target)
        if error is None:
            raise
        raise error from None


def _new_file(target: Path) -> Path:
    """Create an empty, uniquely named file beside `target`, with the mode `target` has or would get."""
    while True:
        tmp_path = target.with_name(f".{target.name}.{secrets.token_hex(4)}.part")
        try:
            os.close(os.open(tmp_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            break
        except FileExistsError:
            continue
    with contextlib.suppress(FileNotFoundError):
        os.chmod(tmp_path, stat.S_IMODE(target.stat().st_mode))
    return tmp_path


def write_bytes_atomic(target: Path, data: bytes) -> None:
    """Write `data` to `target` atomically."""
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(target: Path, text: str) -> None:
    """Write `text` to `target` atomically (UTF-8)."""
    write_bytes_atomic(target, text.encode("utf-8"))
