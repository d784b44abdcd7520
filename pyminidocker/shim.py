"""The public Python API of the C shim (docs/shim.md): the names in the __all__ of
pyminidocker.native and of its submodules (monitor, extract, netlink, seccomp), and shim API
1.0's SECCOMP_DEFAULT made Docker's default seccomp profile.

The profile (container/seccomp_default.json, compiled by container.seccomp for a capability
bounding set) is the engine's policy, above the wrappers; this module wires it into them, so
that native, which the engine's own modules import, depends on nothing above the C boundary.
"""
from __future__ import annotations

from pyminidocker import native
from pyminidocker.native import *  # noqa: F403  (the public names, as __all__ lists them)
from pyminidocker.native import extract as _extract
from pyminidocker.native import monitor as _monitor
from pyminidocker.native import netlink as _netlink
from pyminidocker.native import seccomp as _seccomp
from pyminidocker.native.extract import *  # noqa: F403
from pyminidocker.native.monitor import *  # noqa: F403
from pyminidocker.native.netlink import *  # noqa: F403
from pyminidocker.native.seccomp import *  # noqa: F403

# the public names: one list, as when the wrappers were one module
__all__ = [*native.__all__, *_monitor.__all__, *_extract.__all__, *_netlink.__all__,
           *_seccomp.__all__]


def _default_program(cap_bounding: int | None) -> bytes:
    """SECCOMP_DEFAULT: Docker's default profile for the bounding set (None: Docker's 14
    capabilities), compiled as the engine compiles it."""
    from pyminidocker.container.seccomp import Profile
    from pyminidocker.container.spec import DEFAULT_CAP_MASK

    return Profile.default().compile(DEFAULT_CAP_MASK if cap_bounding is None else cap_bounding)


native.default_seccomp = _default_program
