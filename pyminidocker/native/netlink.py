"""A container's veth on a bridge (csrc/netlink.c): rtnetlink from C, no `ip`, no pyroute2.
Only a container on a bridge network needs it, so `run --network none` does not import it.
"""
from __future__ import annotations

from pyminidocker.native import _raise, ffi, lib

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pyminidocker.native import CData

__all__ = ["net_attach", "net_detach"]


def _ifarg(name: str, value: object) -> bytes:
    """A C string argument: str (or bytes), no NUL inside (C would see a shorter string)."""
    if not isinstance(value, (str, bytes)):
        raise TypeError(f"{name} must be a str, not {type(value).__name__}")
    b = value.encode() if isinstance(value, str) else value
    if b"\0" in b:
        raise ValueError(f"{name} contains a NUL byte")
    return b


def net_attach(pid: int, bridge: str, host_ifname: str, address: str, prefix_len: int,
               gateway: str | None = None, container_ifname: str = "eth0", mtu: int = 0,
               mac: str | None = None) -> None:
    """Give the container whose init is pid a veth on bridge (see pmd_net_attach in pmd.h).

    The host end host_ifname becomes a port of bridge, up; its peer is created in pid's netns
    as container_ifname, up, with address/prefix_len; lo comes up; with gateway, a default
    route via it. mtu 0 is the bridge's, mac None a random one.

    Raises OSError: EINVAL (a bad name, address, prefix, gateway, mtu or mac; op says which),
    FileNotFoundError (ENOENT, op "open netns") if pid is gone, ENODEV (op "find bridge") if
    bridge does not exist, FileExistsError (EEXIST) if host_ifname does, or the kernel's errno
    with its message. On error no veth is left behind.
    """
    keep: list[CData] = []
    a = ffi.new("struct pmd_net_attach *")
    for name, value in (("bridge", bridge), ("host_ifname", host_ifname),
                        ("container_ifname", container_ifname), ("address", address)):
        c = ffi.new("char[]", _ifarg(name, value))
        keep.append(c)
        setattr(a, name, c)
    if gateway is not None:
        keep.append(ffi.new("char[]", _ifarg("gateway", gateway)))
        a.gateway = keep[-1]
    if mac is not None:
        keep.append(ffi.new("char[]", _ifarg("mac", mac)))
        a.mac = keep[-1]
    a.netns_pid = pid
    a.prefix_len = prefix_len
    a.mtu = mtu
    err = ffi.new("struct pmd_error *")
    if lib.pmd_net_attach(a, err) != 0:
        _raise(err)


def net_detach(host_ifname: str) -> None:
    """Delete the veth host_ifname and so its peer (see pmd_net_detach); one that is already
    gone is fine. Raises OSError: EINVAL if host_ifname names a link that is not a veth."""
    err = ffi.new("struct pmd_error *")
    if lib.pmd_net_detach(_ifarg("host_ifname", host_ifname), err) != 0:
        _raise(err)
