"""Open a user's file for reading without ever blocking on it: anything but a regular file is refused.

`open()` on a FIFO waits for a writer forever, and on a character device may never end; opening with
O_NONBLOCK and checking the opened descriptor (not the name, which may change in between) avoids both.
Callers report the OSError as an InputError naming the key and the path (exit 3).
"""

import errno
import os
import stat
from pathlib import Path
from typing import BinaryIO


class NotRegularFile(OSError):
    """The path names a FIFO, a device or a socket: not a file stquant reads."""


def open_regular(path: Path) -> BinaryIO:
    """`path` opened for binary reading; IsADirectoryError for a folder, NotRegularFile for a FIFO, device or
    socket, and the other OSErrors of `open()` (FileNotFoundError, PermissionError...) as they come."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, "is a folder", str(path))
        if not stat.S_ISREG(mode):
            raise NotRegularFile(errno.EINVAL, "not a regular file: a FIFO, device or socket", str(path))
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
