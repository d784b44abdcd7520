"""The engine's firewall rules: iptables chains of its own (nftables where there is no iptables
binary, network/nft.py), each rule tagged so that one network's or one container's rules are
found and removed as a group.

Every rule carries the comment "pmd:<bridge>:<what>" (one iptables-save then shows whether a
network's rules are all there):
    nat    PMD-POSTROUTING  <- POSTROUTING          MASQUERADE for the subnets
    nat    PMD-DNAT         <- PREROUTING, OUTPUT   DNAT for published ports
                               (-m addrtype --dst-type LOCAL)
    filter PMD-FORWARD      <- FORWARD              accept to/from/between the bridges
    filter PMD-INPUT        <- INPUT                guard for route_localnet (network/bridge.py)
Jumps are inserted first in the built-in chains (a host whose FORWARD policy is DROP, as
Docker leaves it, still forwards our traffic). When the last network's rules go, the chains
and their jumps go too, so an idle host shows no PMD line in iptables-save.

nftables: where the iptables binary is missing (iptables-nft counts as iptables), the same rules
go into a table of the engine's own, `ip pyminidocker`, by the nft binary (network/nft.py).

Callers hold bridge.host_lock(). Every step is idempotent (iptables -C before -A/-I).
"""
from __future__ import annotations

import os

from pyminidocker.errors import PmdError

# A container's start reads the rules (rules_snapshot, all_present): this module stays clear
# of subprocess and shlex at import time, as the start path does.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import subprocess

    from pyminidocker.store.networks import Network

# (table, chain, [(builtin chain, jump rule), ...]) in the order they are created
CHAINS: tuple[tuple[str, str, tuple[tuple[str, tuple[str, ...]], ...]], ...] = (
    ("nat", "PMD-POSTROUTING", (("POSTROUTING", ()),)),
    ("nat", "PMD-DNAT", (("PREROUTING", ("-m", "addrtype", "--dst-type", "LOCAL")),
                         ("OUTPUT", ("-m", "addrtype", "--dst-type", "LOCAL")))),
    ("filter", "PMD-FORWARD", (("FORWARD", ()),)),
    ("filter", "PMD-INPUT", (("INPUT", ()),)),
)


def which(name: str) -> str | None:
    """shutil.which for a plain command name (shutil costs milliseconds to import)."""
    for d in os.environ.get("PATH", os.defpath).split(os.pathsep):
        path = os.path.join(d or ".", name)
        if os.access(path, os.X_OK) and not os.path.isdir(path):
            return path
    return None


class Capture:
    """The output of a command started now and read later (result()), so that a container's
    start can do its other work meanwhile. os.posix_spawn and a pipe: the subprocess module
    costs milliseconds to import, and this runs on a container's start."""

    def __init__(self, argv: list[str]):
        self.pid, self.fd = 0, -1
        r, w = os.pipe2(os.O_CLOEXEC)
        try:
            null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
            try:
                self.pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=[
                    (os.POSIX_SPAWN_DUP2, null, 0), (os.POSIX_SPAWN_DUP2, w, 1),
                    (os.POSIX_SPAWN_DUP2, null, 2)])
                self.fd, r = r, -1
            finally:
                os.close(null)
        except OSError:
            pass  # result() is None
        finally:
            os.close(w)
            if r >= 0:
                os.close(r)

    def result(self) -> str | None:
        """Its output, or None if it could not run or failed. Once: then it is closed."""
        if self.fd < 0:
            return None
        chunks = []
        with open(self.fd, "rb") as f:
            self.fd = -1
            while chunk := f.read(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode() if self._reap() == 0 else None

    def close(self) -> None:
        """Drop it unread (idempotent): no descriptor or zombie is left."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        self._reap()

    def _reap(self) -> int:
        if not self.pid:
            return -1
        pid, self.pid = self.pid, 0
        return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def rules_snapshot() -> Capture | None:
    """Start reading the host's iptables rules for a later ensure_network(), or None where
    the rules are nftables' (network/nft.py)."""
    path = which("iptables")
    return Capture([path + "-save"]) if path else None


def _iptables_bin() -> str:
    path = which("iptables")
    if path is None:
        raise PmdError("iptables not found: cannot set up NAT for container networks",
                       hint="install iptables or nftables")
    return path


def backend() -> str:
    """"iptables" where its binary is (iptables-nft included), else "nft" (network/nft.py).
    Raises PmdError when there is neither."""
    if which("iptables"):
        return "iptables"
    if which("nft"):
        return "nft"
    raise PmdError("neither iptables nor nft found: cannot set up NAT for container networks",
                   hint="install iptables or nftables")


def ipt(table: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run iptables -w -t TABLE ARGS. Raises PmdError on failure if check."""
    import shlex
    import subprocess

    argv = [_iptables_bin(), "-w", "-t", table, *args]
    try:
        res = subprocess.run(argv, capture_output=True, text=True, check=False,
                             stdin=subprocess.DEVNULL)
    except OSError as e:
        raise PmdError(f"cannot run iptables: {e}") from None
    if check and res.returncode != 0:
        raise PmdError(f"{shlex.join(argv[1:])}: "
                       f"{res.stderr.strip() or f'exit status {res.returncode}'}")
    return res


def _chains(table: str) -> set[str]:
    out = ipt(table, "-S").stdout
    return {line.split()[1] for line in out.splitlines() if line.startswith(("-N ", "-P "))}


def _has_rule(table: str, chain: str, rule: tuple[str, ...] | list[str]) -> bool:
    return ipt(table, "-C", chain, *rule, check=False).returncode == 0


def add_rule(table: str, chain: str, rule: tuple[str, ...] | list[str],
              first: bool = False) -> None:
    """Add rule unless an identical one is there (iptables -C)."""
    if not _has_rule(table, chain, rule):
        ipt(table, *(("-I", chain, "1") if first else ("-A", chain)), *rule)


def del_rule(table: str, chain: str, rule: tuple[str, ...] | list[str]) -> None:
    """Delete every copy of rule; none is fine."""
    while _has_rule(table, chain, rule):
        ipt(table, "-D", chain, *rule)


def ensure_chains() -> None:
    for table, chain, jumps in CHAINS:
        if chain not in _chains(table):
            # "Chain already exists" if another engine instance without our lock raced us
            res = ipt(table, "-N", chain, check=False)
            if res.returncode != 0 and chain not in _chains(table):
                raise PmdError(f"iptables -t {table} -N {chain}: {res.stderr.strip()}")
        for builtin, match in jumps:
            add_rule(table, builtin, (*match, "-j", chain), first=True)


def rules_of(table: str, chain: str) -> list[list[str]]:
    """The rules of chain as argument lists (after "-A CHAIN"); [] if there is no chain."""
    import shlex

    res = ipt(table, "-S", chain, check=False)
    if res.returncode != 0:
        return []
    return [shlex.split(line)[2:] for line in res.stdout.splitlines()
            if line.startswith(f"-A {chain} ")]


def _drop_empty_chains() -> None:
    """Remove our chains and their jumps once no network has a rule left in any of them."""
    if any(rules_of(table, chain) for table, chain, _ in CHAINS):
        return
    _remove_all_chains()


def _remove_all_chains() -> None:
    for table, chain, jumps in CHAINS:
        for builtin, match in jumps:
            del_rule(table, builtin, (*match, "-j", chain))
        if chain in _chains(table):
            ipt(table, "-F", chain)
            ipt(table, "-X", chain)


def tag(net: Network, what: str) -> tuple[str, ...]:
    # one comment per rule: "pmd:<bridge>:" finds a network's rules, the rest tells which
    return ("-m", "comment", "--comment", f"pmd:{net.bridge}:{what}")


def network_rules(net: Network) -> list[tuple[str, str, tuple[str, ...]]]:
    """(table, chain, rule) of a network, without its published ports."""
    br = net.bridge
    rules = []
    if not net.internal:
        rules += [("nat", "PMD-POSTROUTING", ("-s", net.subnet, "!", "-o", br,
                                              *tag(net, "masquerade"), "-j", "MASQUERADE"))]
    # 127.0.0.1:PORT DNATed into the bridge keeps its loopback source; give it the gateway's
    rules += [
        ("nat", "PMD-POSTROUTING", ("-s", "127.0.0.0/8", "-o", br, *tag(net, "loopback"),
                                    "-j", "MASQUERADE")),
        ("filter", "PMD-FORWARD", ("-i", br, "-o", br, *tag(net, "members"), "-j", "ACCEPT")),
    ]
    if not net.internal:
        rules += [
            ("filter", "PMD-FORWARD", ("-i", br, "!", "-o", br, *tag(net, "out"),
                                       "-j", "ACCEPT")),
            ("filter", "PMD-FORWARD", ("-o", br, "-m", "conntrack", "--ctstate",
                                       "RELATED,ESTABLISHED", *tag(net, "replies"),
                                       "-j", "ACCEPT")),
        ]
    # route_localnet guard: nothing from the bridge may open a connection to the host's
    # loopback (replies to 127.0.0.1 clients are ESTABLISHED; published ports are DNAT)
    rules += [("filter", "PMD-INPUT", ("-i", br, "-d", "127.0.0.0/8", "-m", "conntrack",
                                       "!", "--ctstate", "RELATED,ESTABLISHED,DNAT",
                                       *tag(net, "loopback-guard"), "-j", "DROP"))]
    return rules


def all_present(rules: list[tuple[str, str, tuple[str, ...]]],
                 saved: Capture | None) -> bool:
    """Whether one iptables-save shows our chains, their jumps and these rules (by their
    comments): the common case of a second container on a network costs one process, not
    one iptables -C per rule (each ~3 ms)."""
    text = saved.result() if saved is not None else None
    if text is None:
        return False
    lines = set(text.splitlines())
    for _, chain, jumps in CHAINS:
        if f":{chain} - [0:0]" not in lines and not any(
                line.startswith(f":{chain} ") for line in lines):
            return False
        for builtin, match in jumps:
            if " ".join(("-A", builtin, *match, "-j", chain)) not in lines:
                return False
    return all(f'"{rule[rule.index("--comment") + 1]}"' in text for _, _, rule in rules)


def remove_tagged_rules(prefix: str, exact: bool = False) -> None:
    """Delete the rules of our chains whose comment starts with prefix (is prefix, if
    exact)."""
    for table, chain, _ in CHAINS:
        for rule in rules_of(table, chain):
            if "--comment" not in rule:
                continue
            comment = rule[rule.index("--comment") + 1]
            if comment == prefix or (not exact and comment.startswith(prefix)):
                del_rule(table, chain, rule)


def _remove_every_pmd_chain() -> None:
    """Every chain named PMD-* in nat and filter and every jump to one, whether or not this
    version of the engine made it (a chain an older version used is ours too)."""
    import shlex

    for table in ("nat", "filter"):
        lines = ipt(table, "-S").stdout.splitlines()
        ours = [line.split()[1] for line in lines if line.startswith("-N PMD-")]
        for line in lines:
            words = shlex.split(line)
            if words[:1] == ["-A"] and not words[1].startswith("PMD-") and \
                    "-j" in words and words[words.index("-j") + 1].startswith("PMD-"):
                del_rule(table, words[1], words[2:])
        for chain in ours:
            ipt(table, "-F", chain)
        for chain in ours:  # after every flush: a PMD chain may jump to another
            ipt(table, "-X", chain)


def ensure_network(net: Network, rules_now: Capture | None = None) -> None:
    """The engine's chains, jumps and the network's rules, each added once (iptables, else
    the nftables fallback); a rule or jump deleted behind our back is put back. rules_now:
    the host's rules read meanwhile (rules_snapshot()) to check them against. Raises PmdError
    (iptables, nft; neither of them installed)."""
    if backend() == "nft":
        from pyminidocker.network import nft

        nft.ensure(nft.network_rules(net.bridge, net.subnet, net.internal))
        return
    rules = network_rules(net)
    if all_present(rules, rules_now or rules_snapshot()):
        return
    ensure_chains()
    for table, chain, rule in rules:
        add_rule(table, chain, rule)


def remove_network(bridge: str) -> None:
    """Delete the rules of the network of bridge (published ports included); our chains too
    when no network has rules left. Both backends where present: state made under one is
    found after a switch. Raises PmdError."""
    if which("iptables"):
        remove_tagged_rules(f"pmd:{bridge}:")
        _drop_empty_chains()
    if which("nft"):
        from pyminidocker.network import nft

        nft.delete(f"pmd:{bridge}:")


def reset() -> None:
    """Every rule and chain of the engine's, whatever version of it made them. Raises
    PmdError."""
    if which("iptables"):
        _remove_every_pmd_chain()
    if which("nft"):
        from pyminidocker.network import nft

        nft.reset()
