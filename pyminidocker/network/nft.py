"""The nftables fallback of pyminidocker.network.firewall, for hosts without the iptables binary.

Everything lives in one table of the engine's own, `ip pyminidocker`, whose base chains hook
where the iptables chains are jumped to from (nat postrouting/prerouting/output, filter
forward/input); published ports sit in the regular chain `published`, jumped to for
`fib daddr type local`. Rules carry the same "pmd:<bridge>:<what>" comments as the iptables
ones; nft lists them with their handles (nft -j), by which they are deleted. The table goes
when the last network's rules go, so an idle host has no table of ours.

A limit of nftables itself: an accept in our forward chain does not override a drop in
another table's forward chain (every base chain on a hook is evaluated), so on a host whose
own nftables ruleset drops forwarded traffic, that ruleset must allow the bridge.

Callers hold bridge.host_lock(). Every function raises PmdError when nft fails.
"""
from __future__ import annotations

import json
import subprocess
from collections.abc import Iterable

from pyminidocker.errors import PmdError

TABLE = "pyminidocker"
JUMP_TAG = "pmd:jump"

_BASE = f"""add table ip {TABLE}
add chain ip {TABLE} postrouting {{ type nat hook postrouting priority srcnat; policy accept; }}
add chain ip {TABLE} prerouting {{ type nat hook prerouting priority dstnat; policy accept; }}
add chain ip {TABLE} output {{ type nat hook output priority -100; policy accept; }}
add chain ip {TABLE} published
add chain ip {TABLE} forward {{ type filter hook forward priority filter; policy accept; }}
add chain ip {TABLE} input {{ type filter hook input priority filter; policy accept; }}
"""

Rule = tuple[str, str, str]  # (chain, statement, comment)


def _run(argv: list[str], script: str | None = None) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(argv, input=script, capture_output=True, text=True, check=False)
    except OSError as e:
        raise PmdError(f"cannot run nft: {e}") from None


def _apply(script: str) -> None:
    """Run an nft script as one transaction (all of it or nothing)."""
    res = _run(["nft", "-f", "-"], script)
    if res.returncode != 0:
        raise PmdError(f"nft: {res.stderr.strip() or f'exit status {res.returncode}'}")


def rules() -> list[tuple[str, int, str]]:
    """(chain, handle, comment) of every rule of our table; [] when there is no table."""
    res = _run(["nft", "-j", "list", "table", "ip", TABLE])
    if res.returncode != 0:
        return []  # "No such file or directory": no table yet
    try:
        objs = json.loads(res.stdout).get("nftables", [])
    except ValueError as e:
        raise PmdError(f"nft -j list table ip {TABLE}: unreadable output: {e}") from None
    return [(o["rule"]["chain"], int(o["rule"]["handle"]), o["rule"].get("comment", ""))
            for o in objs if "rule" in o]


def _quote(comment: str) -> str:
    return '"' + comment.replace('"', "") + '"'


def network_rules(bridge: str, subnet: str, internal: bool) -> list[Rule]:
    """The rules of one network, as network._network_rules() builds them for iptables."""
    br = f'"{bridge}"'
    tag = f"pmd:{bridge}:"
    out: list[Rule] = []
    if not internal:
        out.append(("postrouting", f"ip saddr {subnet} oifname != {br} masquerade",
                    tag + "masquerade"))
    out += [
        ("postrouting", f"ip saddr 127.0.0.0/8 oifname {br} masquerade", tag + "loopback"),
        ("forward", f"iifname {br} oifname {br} accept", tag + "members"),
    ]
    if not internal:
        out += [
            ("forward", f"iifname {br} oifname != {br} accept", tag + "out"),
            ("forward", f"oifname {br} ct state {{ established, related }} accept",
             tag + "replies"),
        ]
    out.append(("input", f"iifname {br} ip daddr 127.0.0.0/8 ct state != "
                         f"{{ established, related }} ct status & dnat == 0 drop",
                tag + "loopback-guard"))
    return out


def port_tag(bridge: str, container_ip: str) -> str:
    return f"pmd:{bridge}:port:{container_ip} "


def port_rules(bridge: str, container_ip: str, proto: str, host_ip: str, host_port: int,
               container_port: int) -> list[Rule]:
    """DNAT, forward accept and hairpin masquerade of one published port. The comment carries
    the mapping ("pmd:BR:port:CIP PROTO HOSTIP|- HOSTPORT CPORT KIND") so that published()
    reads it back without parsing nft's expressions."""
    tag = f"{port_tag(bridge, container_ip)}{proto} {host_ip or '-'} {host_port} " \
          f"{container_port} "
    dst = f"ip daddr {host_ip} " if host_ip else ""
    return [
        ("published", f"{dst}{proto} dport {host_port} dnat to {container_ip}:{container_port}",
         tag + "dnat"),
        ("forward", f'ip daddr {container_ip} iifname != "{bridge}" oifname "{bridge}" '
                    f"{proto} dport {container_port} accept", tag + "forward"),
        ("postrouting", f"ip saddr {container_ip} ip daddr {container_ip} {proto} dport "
                        f"{container_port} masquerade", tag + "hairpin"),
    ]


def ensure(wanted: Iterable[Rule]) -> None:
    """Our table and chains (nft's `add` is idempotent for them), the jumps to `published`, and
    every wanted rule whose comment is not there yet, in one transaction."""
    have = {c for _, _, c in rules()}
    lines = [_BASE]
    if JUMP_TAG not in have:
        for chain in ("prerouting", "output"):
            lines.append(f"add rule ip {TABLE} {chain} fib daddr type local jump published "
                         f"comment {_quote(JUMP_TAG)}\n")
    for chain, stmt, comment in wanted:
        if comment not in have:
            lines.append(f"add rule ip {TABLE} {chain} {stmt} comment {_quote(comment)}\n")
            have.add(comment)
    _apply("".join(lines))


def delete(tag: str) -> None:
    """Delete every rule whose comment starts with tag; then the table if only the jumps
    remain."""
    current = rules()
    doomed = [(chain, handle) for chain, handle, c in current if c.startswith(tag)]
    left = [c for _, _, c in current if not c.startswith(tag) and c != JUMP_TAG]
    if not left and current:
        _apply(f"delete table ip {TABLE}\n")
        return
    if doomed:
        _apply("".join(f"delete rule ip {TABLE} {chain} handle {handle}\n"
                       for chain, handle in doomed))


def published() -> list[tuple[str, str, int]]:
    """(proto, host ip or "", host port) of every published port."""
    out = []
    for _, _, c in rules():
        words = c.split(" ")
        if ":port:" in c and len(words) == 6 and words[5] == "dnat" and words[3].isdigit():
            out.append((words[1], "" if words[2] == "-" else words[2], int(words[3])))
    return out


def reset() -> None:
    """Delete our table, whatever is in it."""
    if rules() or _run(["nft", "list", "table", "ip", TABLE]).returncode == 0:
        _apply(f"delete table ip {TABLE}\n")
