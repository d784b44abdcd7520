"""An image's init layer: the mount points every container gets that the image lacks, made
once per image by the first start that finds it missing (Runtime._mount_root), from the
image's root as mounted. Imported by that start only.
"""
from __future__ import annotations

import os
import stat

from pyminidocker.container.specconv import INIT_DIRS, INIT_FILES

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyminidocker.store import Store


def make(store: Store, rootfs: str, init: str) -> None:
    """Make the image's init layer from what its root (as mounted at rootfs) lacks of the
    mount points every container gets (INIT_DIRS, /etc/INIT_FILES). Without it, each
    start would create them in the container's own layer (the child makes a missing mount
    point), and each removal delete them again: 1-2 ms of a start on a disk like this
    one's. As Docker's <id>-init layer, but made once per image. An /etc that is not a
    directory of the image's own (a symlink, say) is left to the child."""
    with store.lock():
        if os.path.isdir(init):
            return  # made by another start meanwhile
        staging = store.new_staging("locked")  # renamed under the store lock
        try:
            for name in INIT_DIRS:
                if not os.path.lexists(os.path.join(rootfs, name)):
                    os.mkdir(os.path.join(staging, name), 0o755)
            etc = os.path.join(rootfs, "etc")
            try:
                st: os.stat_result | None = os.lstat(etc)
            except FileNotFoundError:
                st = None
            if st is None or stat.S_ISDIR(st.st_mode):
                missing = [f for f in INIT_FILES
                           if st is None or not os.path.lexists(os.path.join(etc, f))]
                if missing:
                    own = os.path.join(staging, "etc")
                    os.mkdir(own, 0o755)
                    if st is not None:  # it stands above the image's /etc: look the same
                        os.chown(own, st.st_uid, st.st_gid)
                        os.chmod(own, stat.S_IMODE(st.st_mode))
                    for f in missing:
                        os.close(os.open(os.path.join(own, f),
                                         os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644))
            os.rename(staging, init)
        except OSError:
            store.discard(staging)
            raise
