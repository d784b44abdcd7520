"""The `run`/`create` flags beyond the first two dozen (cli/containers.py's RUN_FLAGS): checked
here (Docker's one-line errors, exit 125, before anything is made), and handed to the runtime as
plain values in CreateOptions.extra (see container.runtime for what each does).

Imported only when one of them is given: `run` without them takes containers._default_extra.
"""
from __future__ import annotations

import os

from pyminidocker.engine import ULIMITS, parse_restart, parse_signal
from pyminidocker.errors import UsageError

TYPE_CHECKING = False  # typing is not imported at run time: the start path
if TYPE_CHECKING:
    from typing import Any

    from pyminidocker.cli.args import Namespace

KERNEL_MEMORY_WARNING = ("WARNING: Specifying a kernel memory limit is deprecated and will be "
                         "removed in a future release.")


def _int(value: str, flag: str) -> int:
    try:
        return int(value, 10)
    except ValueError:
        raise UsageError(f'invalid argument "{value}" for "{flag}" flag: strconv.ParseInt: '
                         f'parsing "{value}": invalid syntax') from None


def _size(value: str, flag: str, unlimited: bool = False) -> int:
    from pyminidocker.engine import parse_bytes

    try:
        return parse_bytes(value, allow_unlimited=unlimited)
    except UsageError:
        raise UsageError(f'invalid argument "{value}" for "{flag}" flag: invalid size: '
                         f"'{value}'") from None


def _ip(text: str) -> bool:
    """An IPv4 or IPv6 address (no ipaddress import: the start path)."""
    parts = text.split(".")
    if len(parts) == 4:
        return all(p.isdigit() and int(p) < 256 and (p == "0" or not p.startswith("0"))
                   for p in parts)
    return ":" in text and all(c in "0123456789abcdefABCDEF:." for c in text) and \
        text.count("::") <= 1


def parse_labels(items: list[str], files: list[str]) -> dict[str, str]:
    """--label-file (KEY=VALUE lines, # comments) then -l: later wins."""
    lines: list[str] = []
    for path in files:
        try:
            with open(path) as f:
                lines += [ln.strip() for ln in f if ln.strip() and not ln.lstrip().startswith("#")]
        except OSError as e:
            raise UsageError(f"open {path}: {(e.strerror or '').lower()}") from None
    out: dict[str, str] = {}
    for item in lines + items:
        key, _, value = item.partition("=")
        if not key:
            raise UsageError(f"invalid label: {item!r}")
        out[key] = value
    return out


def parse_add_host(spec: str) -> str:
    """HOST:IP (IP may be host-gateway; an IPv6 one keeps its colons) → "HOST:IP"."""
    host, sep, ip = spec.partition(":")
    if not sep or not host or not ip:
        raise UsageError(f'invalid argument "{spec}" for "--add-host" flag: bad format for '
                         f'add-host: "{spec}"')
    if ip != "host-gateway" and not _ip(ip.strip("[]")):
        raise UsageError(f'invalid argument "{spec}" for "--add-host" flag: invalid IP '
                         f'address in add-host: "{ip}"')
    return f"{host}:{ip.strip('[]')}"


def parse_ulimit(spec: str) -> tuple[str, int, int]:
    name, eq, limits = spec.partition("=")
    if not eq:
        raise UsageError(f'invalid argument "{spec}" for "--ulimit" flag: invalid ulimit '
                         f"argument: {spec}")
    if name not in ULIMITS:
        raise UsageError(f'invalid argument "{spec}" for "--ulimit" flag: invalid ulimit '
                         f"type: {name}")
    soft_s, colon, hard_s = limits.partition(":")
    try:
        soft = int(soft_s)
        hard = int(hard_s) if colon else soft
    except ValueError:
        raise UsageError(f'invalid argument "{spec}" for "--ulimit" flag: strconv.ParseInt: '
                         f'parsing "{limits}": invalid syntax') from None
    if soft > hard:
        raise UsageError(f'invalid argument "{spec}" for "--ulimit" flag: ulimit soft limit '
                         f"must be less than or equal to hard limit: {soft} > {hard}")
    return name, soft, hard


def parse_expose(spec: str) -> list[str]:
    """80, 80/tcp, 8000-8010/udp → ["80/tcp", ...]."""
    ports, _, proto = spec.partition("/")
    proto = proto or "tcp"
    lo, dash, hi = ports.partition("-")
    if proto not in ("tcp", "udp", "sctp") or not lo.isdigit() or (dash and not hi.isdigit()) \
            or int(hi or lo) < int(lo) or int(hi or lo) > 65535:
        raise UsageError(f"invalid range format for --expose: {spec}")
    return [f"{p}/{proto}" for p in range(int(lo), int(hi or lo) + 1)]


def parse_device(spec: str) -> dict[str, str]:
    """HOST[:CONTAINER][:PERMISSIONS] → {"host", "container", "perms"}; the host path must be
    a device (or a directory of devices, as Docker's). Raises UsageError."""
    parts = spec.split(":")
    if len(parts) > 3 or not parts[0]:
        raise UsageError(f"invalid device specification: {spec}")
    host = parts[0]
    ctr, perms = host, "rwm"
    if len(parts) == 2:
        if parts[1] and not parts[1].strip("rwm"):
            perms = parts[1]
        else:
            ctr = parts[1]
    elif len(parts) == 3:
        ctr, perms = parts[1], parts[2]
    if not perms or perms.strip("rwm") or not ctr.startswith("/"):
        raise UsageError(f"invalid device specification: {spec}")
    try:
        os.stat(host)
    except OSError as e:
        raise UsageError(f'error gathering device information while adding custom device '
                         f'"{host}": {(e.strerror or "").lower()}') from None
    return {"host": host, "container": ctr, "perms": perms}


def parse_detach_keys(keys: str) -> str:
    """keys, checked (see engine.parse_detach_keys). Raises UsageError."""
    from pyminidocker.engine import parse_detach_keys as check

    check(keys)
    return keys


_UNITS_NS = {"ns": 1, "us": 1000, "µs": 1000, "ms": 1_000_000, "s": 1_000_000_000,
             "m": 60_000_000_000, "h": 3_600_000_000_000}


def parse_duration(text: str, flag: str) -> int:
    """A Go duration ("1m30s", "500ms", "2h") in nanoseconds. Raises UsageError."""
    bad = UsageError(f'invalid argument "{text}" for "{flag}" flag: time: invalid duration '
                     f'"{text}"')
    s, total = text, 0
    if s in ("0", ""):
        return 0
    while s:
        i = 0
        while i < len(s) and (s[i].isdigit() or s[i] == "."):
            i += 1
        j = i
        while j < len(s) and not (s[j].isdigit() or s[j] == "."):
            j += 1
        number, unit = s[:i], s[i:j]
        if not number or unit not in _UNITS_NS or number.count(".") > 1:
            raise bad
        total += int(float(number) * _UNITS_NS[unit])
        s = s[j:]
    return total


def parse_health(args: Namespace) -> dict[str, Any] | None:
    """--health-* and --no-healthcheck as Docker's Healthcheck config (durations in ns, 0 for
    the image's or the default); None when none is given."""
    given = {k: getattr(args, k) for k in ("health_cmd", "health_interval", "health_timeout",
                                            "health_retries", "health_start_period")}
    if args.no_healthcheck:
        if any(v is not None for v in given.values()):
            raise UsageError("--no-healthcheck conflicts with --health-* options")
        return {"Test": ["NONE"]}
    if all(v is None for v in given.values()):
        return None
    hc: dict[str, Any] = {}
    if args.health_cmd is not None:
        hc["Test"] = ["CMD-SHELL", args.health_cmd]
    for key, name in (("Interval", "health_interval"), ("Timeout", "health_timeout"),
                      ("StartPeriod", "health_start_period")):
        flag = "--" + name.replace("_", "-")
        value = getattr(args, name)
        if value is not None:
            hc[key] = parse_duration(value, flag)
            if hc[key] < 0:
                raise UsageError(f"{flag} cannot be negative")
            if 0 < hc[key] < 1_000_000:
                raise UsageError(f"{key} in Healthcheck cannot be less than 1ms")
    if args.health_retries is not None:
        hc["Retries"] = _int(args.health_retries, "--health-retries")
        if hc["Retries"] < 0:
            raise UsageError("--health-retries cannot be negative")
    return hc


def _decimal_size(text: str, flag: str) -> int:
    """go-units FromHumanSize: 10m = 10,000,000 (decimal units, as json-file's max-size)."""
    s = text.strip().lower().removesuffix("b")
    mult = {"k": 1000, "m": 1000 ** 2, "g": 1000 ** 3, "t": 1000 ** 4}.get(s[-1:], 1)
    number = s[:-1] if mult != 1 else s
    try:
        value = int(float(number) * mult)
    except ValueError:
        raise UsageError(f"invalid size: '{text}'") from None
    if value <= 0:
        raise UsageError(f"invalid size: '{text}'")
    return value


def parse_log(driver: str, opts: list[str]) -> dict[str, Any]:
    """--log-driver and --log-opt as Docker checks them."""
    if driver not in ("json-file", "local", "none"):
        raise UsageError(f'error looking up logging plugin {driver}: plugin "{driver}" not '
                         "found")
    log: dict[str, Any] = {"driver": driver}
    for opt in opts:
        key, eq, value = opt.partition("=")
        if not eq:
            raise UsageError(f"invalid key value pair format in logging opts: {opt}")
        if driver == "none" or key not in ("max-size", "max-file", "compress"):
            raise UsageError(f"unknown log opt '{key}' for {driver} log driver")
        if key == "max-size":
            log["max_size"] = _decimal_size(value, "max-size")
        elif key == "max-file":
            if not value.isdigit() or int(value) < 1:
                raise UsageError("max-file cannot be less than 1")
            log["max_file"] = int(value)
    if "max_file" in log and "max_size" not in log:
        raise UsageError("max-file can only be used with max-size")
    return log


def _mode(value: str | None, flag: str, allowed: tuple[str, ...], what: str,
          container_ok: bool = False) -> str:
    v = value or ""
    if v in allowed or (container_ok and v.startswith("container:") and len(v) > 10):
        return v
    raise UsageError(f"--{flag}: invalid {what} mode")


def parse_throttle(spec: str, kind: str) -> list[Any]:
    """--device-read-bps /dev/sda:1mb (bps: a size, iops: a number) → [kind, "MAJOR:MINOR",
    rate, path], Docker's checks and words; the path must be a block device. Raises
    UsageError."""
    flag = f"--device-{kind.replace('_', '-')}"
    path, colon, rate = spec.partition(":")
    if not colon or ":" in rate:
        raise UsageError(f'invalid argument "{spec}" for "{flag}" flag: bad format: {spec}')
    if not path.startswith("/dev/"):
        raise UsageError(f'invalid argument "{spec}" for "{flag}" flag: bad format for device '
                         f"path: {path}")
    bad = UsageError(f'invalid argument "{spec}" for "{flag}" flag: invalid rate for device: '
                     f"{spec}. The correct format is <device-path>:<number>"
                     + ("[<unit>]. Number must be a positive integer. Unit is optional and can "
                        "be kb, mb, or gb" if kind.endswith("bps") else
                        ". Number must be a positive integer"))
    if kind.endswith("iops"):
        if not rate.isdigit():
            raise bad
        value = int(rate)
    else:
        from pyminidocker.engine import parse_bytes

        try:
            value = parse_bytes(rate)
        except UsageError:
            raise bad from None
        if value < 0:
            raise bad
    import stat

    try:
        st = os.stat(path)
    except OSError as e:
        raise UsageError(f"stat {path}: {(e.strerror or '').lower()}") from None
    if not stat.S_ISBLK(st.st_mode):
        raise UsageError(f"{path} is not a block device")
    return [kind, f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}", value, path]


def parse_sysctls(items: list[str], network: str, ipc_mode: str) -> dict[str, str]:
    """--sysctl KEY=VALUE: the namespaced ones Docker's client allows, refused in a namespace
    the host shares (runc's words). Raises UsageError."""
    from pyminidocker.engine import sysctl_namespace

    out: dict[str, str] = {}
    for item in items:
        key, eq, value = item.partition("=")
        kind = sysctl_namespace(key) if eq else None
        if kind not in ("ipc", "network"):  # the uts ones have their own flags
            raise UsageError(f'invalid argument "{item}" for "--sysctl" flag: sysctl '
                             f"'{item}' is not whitelisted")
        if kind == "ipc" and ipc_mode.startswith("container:"):
            # the container starts outside X's namespace and enters it later: the value would
            # land in the engine's own
            raise UsageError(f'sysctl "{key}" cannot be set with --ipc {ipc_mode}: set it in '
                             "that container")
        if (kind == "network" and network == "host") or (kind == "ipc" and ipc_mode == "host"):
            where = "network" if kind == "network" else "ipc"
            raise UsageError(f'sysctl "{key}" not allowed in host {where} namespace')
        out[key] = value
    return out


def run_extra(args: Namespace, warn: Any) -> dict[str, Any]:
    """The checked values of this module's flags, as CreateOptions.extra holds them. warn(line)
    prints Docker's client-side warnings."""
    x: dict[str, Any] = {}
    for step in (_process_flags, _limit_flags, _refused_and_mode_flags,
                 _device_and_network_flags):
        step(args, x, warn)
    return x


def _process_flags(args: Namespace, x: dict[str, Any], warn: Any) -> None:
    """Labels, hosts, DNS, /dev/shm, ulimits, stop signal and timeout, EXPOSE, groups, --pull."""
    x["labels"] = parse_labels(args.label, args.label_file)
    x["extra_hosts"] = [parse_add_host(h) for h in args.add_host]
    for d in args.dns:
        if not _ip(d):
            raise UsageError(f'invalid argument "{d}" for "--dns" flag: {d} is not an ip '
                             "address")
    x["dns"], x["dns_search"], x["dns_options"] = args.dns, args.dns_search, args.dns_option
    if args.shm_size is not None:
        x["shm_size"] = _size(args.shm_size, "--shm-size")
        if x["shm_size"] <= 0:
            raise UsageError(f'invalid argument "{args.shm_size}" for "--shm-size" flag: '
                             "SHM size must be greater than 0")
    ulimits = {}
    for u in args.ulimit:
        name, soft, hard = parse_ulimit(u)
        ulimits[name] = [soft, hard]
    x["ulimits"] = ulimits
    if args.stop_signal is not None:
        parse_signal(args.stop_signal)
        x["stop_signal"] = args.stop_signal
    if args.stop_timeout is not None:
        x["stop_timeout"] = _int(args.stop_timeout, "--stop-timeout")
    x["expose"] = [p for e in args.expose for p in parse_expose(e)]
    x["group_add"] = list(args.group_add)
    if args.pull not in ("always", "missing", "never"):
        raise UsageError(f"invalid pull option: '{args.pull}': must be one of \"always\", "
                         '"missing" or "never"')


def _limit_flags(args: Namespace, x: dict[str, Any], warn: Any) -> None:
    """Memory, CPU and blkio limits (--mac-address and --network-alias are checked
    among them: the order of the checks, so of the first error, is the one before the split)."""
    if args.memory_swap is not None:
        x["memory_swap"] = _size(args.memory_swap, "--memory-swap", unlimited=True)
    if args.memory_reservation is not None:
        x["memory_reservation"] = _size(args.memory_reservation, "--memory-reservation")
    if args.kernel_memory is not None:
        _size(args.kernel_memory, "--kernel-memory")
        warn(KERNEL_MEMORY_WARNING)
    for flag in ("cpuset_cpus", "cpuset_mems", "cgroup_parent"):
        if getattr(args, flag) is not None:
            x[flag] = getattr(args, flag)
    for flag in ("cpu_shares", "cpu_period", "cpu_quota", "blkio_weight", "cpu_rt_period",
                 "cpu_rt_runtime"):
        if getattr(args, flag) is not None:
            x[flag] = _int(getattr(args, flag), "--" + flag.replace("_", "-"))
    if x.get("blkio_weight") and not 10 <= x["blkio_weight"] <= 1000:
        raise UsageError("Range of blkio weight is from 10 to 1000")
    x["oom_kill_disable"] = bool(args.oom_kill_disable)
    if args.mac_address is not None:
        parts = args.mac_address.split(":")
        if len(parts) != 6 or not all(len(p) == 2 and all(c in "0123456789abcdefABCDEF"
                                                           for c in p) for p in parts):
            raise UsageError(f"{args.mac_address} is not a valid mac address")
        if args.network in ("host", "none"):
            raise UsageError("conflicting options: mac-address and the network mode")
        x["mac_address"] = args.mac_address.lower()
    if args.network_alias:
        if args.network in ("bridge", "default", "host", "none"):
            raise UsageError("network-scoped alias is supported only for containers in user "
                             "defined networks")
        x["aliases"] = list(args.network_alias)
    if args.memory_swappiness is not None:
        x["memory_swappiness"] = _int(args.memory_swappiness, "--memory-swappiness")
        if x["memory_swappiness"] != -1 and not 0 <= x["memory_swappiness"] <= 100:
            raise UsageError(f"invalid value: {x['memory_swappiness']}, valid memory "
                             "swappiness range is 0-100")


def _refused_and_mode_flags(args: Namespace, x: dict[str, Any], warn: Any) -> None:
    """What Docker refuses on a host like this one; namespace modes, devices,
    restart, log, health, attach and detach keys."""
    # what Docker refuses or ignores on a host like this one, in its words
    if args.runtime not in (None, "runc"):
        raise UsageError(f"unknown or invalid runtime name: {args.runtime}")
    if args.isolation not in (None, "", "default"):
        raise UsageError(f"Invalid isolation: {args.isolation!r} - Windows isolation is only "
                         "supported on Windows")
    if args.volume_driver not in (None, "", "local"):
        raise UsageError(f'error looking up volume plugin {args.volume_driver}: plugin '
                         f'"{args.volume_driver}" not found')
    if args.storage_opt:
        raise UsageError("--storage-opt is supported only for overlay over xfs with 'pquota' "
                         "mount option")
    if args.gpus is not None:
        raise UsageError('could not select device driver "" with capabilities: [[gpu]]')
    if not args.disable_content_trust:
        raise UsageError("content trust (--disable-content-trust=false) is not supported")
    if args.oom_score_adj is not None:
        x["oom_score_adj"] = _int(args.oom_score_adj, "--oom-score-adj")
        if not -1000 <= x["oom_score_adj"] <= 1000:
            raise UsageError(f"Invalid value {x['oom_score_adj']}, range for oom score adj is "
                             "[-1000, 1000]")
    x["cgroupns"] = _mode(args.cgroupns, "cgroupns", ("", "host", "private"), "CGROUP")
    x["pid_mode"] = _mode(args.pid, "pid", ("", "host"), "PID", container_ok=True)
    x["ipc_mode"] = _mode(args.ipc, "ipc", ("", "host", "private", "shareable", "none"), "IPC",
                          container_ok=True)
    x["uts_mode"] = _mode(args.uts, "uts", ("", "host"), "UTS")
    _mode(args.userns, "userns", ("", "host"), "USER")
    x["devices"] = [parse_device(d) for d in args.device]
    if args.device_cgroup_rule:
        from pyminidocker.engine import device_program

        device_program(tuple(("allow", r) for r in args.device_cgroup_rule))
    x["device_cgroup_rules"] = list(args.device_cgroup_rule)
    x["init"] = bool(args.init)
    x["restart"] = parse_restart(args.restart)
    x["log"] = parse_log(args.log_driver, args.log_opt)
    health = parse_health(args)
    if health is not None:
        x["health_flags"] = health
    if x["restart"]["name"] != "no" and getattr(args, "rm", False):
        raise UsageError("Conflicting options: --restart and --rm")
    streams = []
    for s in args.attach:
        if s.lower() not in ("stdin", "stdout", "stderr"):
            raise UsageError("valid streams are STDIN, STDOUT and STDERR")
        streams.append(s.lower())
    if streams and getattr(args, "detach", False):
        raise UsageError("Conflicting options: -a and -d")
    x["attach"] = streams
    x["sig_proxy"] = bool(args.sig_proxy)
    if args.detach_keys is not None:
        x["detach_keys"] = parse_detach_keys(args.detach_keys)
    if args.hostname and args.network == "host":
        raise UsageError("Conflicting options: hostname and the network mode")


def _device_and_network_flags(args: Namespace, x: dict[str, Any], warn: Any) -> None:
    """blkio throttles and weights, links, addresses, sysctls, domainname."""
    throttle = [parse_throttle(spec, kind) for kind in ("read_bps", "write_bps", "read_iops",
                                                        "write_iops")
                for spec in getattr(args, f"device_{kind}")]
    if throttle:
        x["blkio_throttle"] = throttle
    links = []
    for spec in args.link:
        name, _, alias = spec.partition(":")
        if not name or spec.count(":") > 1:
            raise UsageError(f'invalid argument "{spec}" for "--link" flag: invalid format '
                             f"{spec}")
        links.append({"name": name.lstrip("/"), "alias": (alias or name).lstrip("/")})
    if links:
        if args.network in ("host", "none"):
            raise UsageError(f"conflicting options: {args.network} type networking can't be "
                             "used with links. This would result in undefined behavior")
        x["links"] = links
    for spec in args.blkio_weight_device:
        path, colon, weight = spec.partition(":")
        if not colon or ":" in weight:
            raise UsageError(f'invalid argument "{spec}" for "--blkio-weight-device" flag: '
                             f"bad format: {spec}")
        if not path.startswith("/dev/"):
            raise UsageError(f'invalid argument "{spec}" for "--blkio-weight-device" flag: '
                             f"bad format for device path: {path}")
        if not weight.isdigit() or (int(weight) != 0 and not 10 <= int(weight) <= 1000):
            raise UsageError(f'invalid argument "{spec}" for "--blkio-weight-device" flag: '
                             f"invalid weight for device: {spec}")
    if args.blkio_weight_device and not any(
            os.path.exists(f"/sys/fs/cgroup/blkio/blkio.{f}") for f in ("weight_device",
                                                                       "bfq.weight_device")):
        warn("WARNING: Your kernel does not support BlkioWeightDevice. Weight-device "
             "discarded.")
    elif args.blkio_weight_device:
        raise UsageError("--blkio-weight-device is not supported by this engine yet")
    if args.ip6 is not None:
        # what Docker says of an IPv6 address on a network without an IPv6 subnet
        if args.network in ("bridge", "default", "host", "none"):
            raise UsageError("user specified IP address is supported on user defined networks "
                             "only")
        raise UsageError(f"Invalid address {args.ip6}: It does not belong to any of this "
                         "network's subnets")
    if args.link_local_ip:
        if any(not _ip(a) for a in args.link_local_ip):
            raise UsageError("Invalid link-local IP address: "
                             f"[{' '.join(args.link_local_ip)}]")
        if args.network in ("host", "none"):
            raise UsageError(f"conflicting options: link-local IP addresses and the network "
                             f"mode {args.network}")
        x["link_local_ips"] = list(args.link_local_ip)
    if args.ip is not None:
        if not _ip(args.ip) or ":" in args.ip:
            raise UsageError(f"invalid IPv4 address: {args.ip}")
        if args.network in ("bridge", "default", "host", "none"):
            raise UsageError("user specified IP address is supported on user defined networks "
                             "only")
        x["ip"] = args.ip
    if args.sysctl:
        x["sysctls"] = parse_sysctls(args.sysctl, args.network, x["ipc_mode"])
    if args.domainname:
        if x["uts_mode"] == "host":
            raise UsageError("Conflicting options: domainname and the UTS mode")
        x["domainname"] = args.domainname
