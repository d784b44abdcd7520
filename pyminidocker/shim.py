"""The public Python API of the C shim (docs/shim.md): pyminidocker.native's names in __all__,
and shim API 1.0's SECCOMP_DEFAULT made Docker's default seccomp profile.

The profile (container/seccomp_default.json, compiled by container.seccomp for a capability
bounding set) is the engine's policy, above the wrappers; this module wires it into them, so
that native, which the engine's own modules import, depends on nothing above the C boundary.
"""
from __future__ import annotations

from pyminidocker import native
from pyminidocker.native import *  # noqa: F403  (the public names, as __all__ lists them)
from pyminidocker.native import __all__  # noqa: F401


def _default_program(cap_bounding: int | None) -> bytes:
    """SECCOMP_DEFAULT: Docker's default profile for the bounding set (None: Docker's 14
    capabilities), compiled as the engine compiles it."""
    from pyminidocker.container.seccomp import Profile
    from pyminidocker.container.spec import DEFAULT_CAP_MASK

    return Profile.default().compile(DEFAULT_CAP_MASK if cap_bounding is None else cap_bounding)


native.default_seccomp = _default_program
