"""A running container's console (run -t): its window size, set from outside.

The pty's master is the monitor's (pmd_monitor_spec: it logs what the container writes there),
out of reach of a later command. The size is the pty's, though, whichever end sets it: the
slave end, which the container's init holds as its stdio, takes TIOCSWINSZ as well, and the
kernel then signals SIGWINCH to the console's foreground process group as it would for a
terminal window that changed (tty_ioctl(4)). The slave is opened again through the init's
/proc/PID/fd link, which names that very file: no path in the container's (untrusted) tree
is followed.
"""
from __future__ import annotations

import fcntl
import os
import stat
import struct
import termios

# Unix98 pty slaves: major numbers 136-143 (Documentation/admin-guide/devices.txt)
_PTY_SLAVE_MAJORS = range(136, 144)


def set_size(pid: int, rows: int, cols: int) -> bool:
    """Give the console of the container whose init is pid (in our pid namespace) this size.
    False when its init holds no pty on fd 0, 1 or 2: a container without a tty (or one whose
    init closed its console). Raises OSError (ESRCH-like ENOENT when the init is gone)."""
    for n in (0, 1, 2):
        try:
            fd = os.open(f"/proc/{pid}/fd/{n}",
                         os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            if not os.path.exists(f"/proc/{pid}"):
                raise
            continue  # that fd is closed
        except OSError:
            continue  # a socket or another file that cannot be opened again
        try:
            st = os.fstat(fd)
            if stat.S_ISCHR(st.st_mode) and os.major(st.st_rdev) in _PTY_SLAVE_MAJORS:
                set_fd_size(fd, rows, cols)
                return True
        finally:
            os.close(fd)
    return False


def set_fd_size(fd: int, rows: int, cols: int) -> None:
    """Give the pty of fd (either end) this size. Raises OSError."""
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
