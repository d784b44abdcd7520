"""Docker's inspect documents, built from our records: what `inspect` prints, --format reads
and the Docker Engine API serves (the engine's inspect calls return these).

Every key that Docker 20.10 prints is here with Docker's type; where the engine has no such
concept the value is Docker's zero value for it (null for Docker's nil slices and pointers, "" ,
0, false, {}), never a missing key, so that a script's `{{.HostConfig.RestartPolicy.Name}}`
works. The one exception is Docker's own: State.Health appears only for a container with a
health check, so `{{.State.Health.Status}}` fails as in Docker ("map has no entry for key").

Labels and Options are StringMap (Go's map[string]string): `index` of a missing label is "".
"""
from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any


class StringMap(dict):  # type: ignore[type-arg]
    """A Go map[string]string (Labels, Options): a Go template's `index` of a missing key
    reads "" where a map of any values reads <no value>."""

ZERO_TIME = "0001-01-01T00:00:00Z"

# Docker's defaults for what a container masks and makes read-only in /proc and /sys
# (moby's oci defaults); a privileged container has neither.
MASKED_PATHS = ["/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
                "/sys/firmware"]
READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]


def _port_key(port: str) -> str:
    return port if "/" in port else port + "/tcp"


def _port_bindings(specs: list[str]) -> dict[str, list[dict[str, str]]]:
    """HostConfig.PortBindings from the -p specs as given ("" host port: any free one)."""
    from pyminidocker.network.ports import parse_publish

    out: dict[str, list[dict[str, str]]] = {}
    for spec in specs:
        for m in parse_publish(spec):
            out.setdefault(f"{m.container_port}/{m.proto}", []).append(
                {"HostIp": m.host_ip, "HostPort": str(m.host_port) if m.host_port else ""})
    return out


def published_ports(mappings: list[str], exposed: Mapping[str, Any] | None = None
                    ) -> dict[str, list[dict[str, str]] | None]:
    """NetworkSettings.Ports: each exposed or published port, its bindings or null.

    mappings are the runtime's "80/tcp -> 0.0.0.0:8080" strings of a running container.
    """
    out: dict[str, list[dict[str, str]] | None] = {
        _port_key(p): None for p in (exposed or {})}
    for m in mappings:
        inside, _, outside = m.partition(" -> ")
        ip, _, port = outside.rpartition(":")
        bindings = out.get(inside) or []
        bindings.append({"HostIp": ip or "0.0.0.0", "HostPort": port})
        out[inside] = bindings
    return out


def _endpoint(net: Any, ip: str, network_id: str = "", aliases: list[str] | None = None,
              mac: str = "") -> dict[str, Any]:
    prefix = getattr(net, "prefix_len", 0) if ip else 0
    if ip and not mac and hasattr(net, "mac_of"):
        mac = net.mac_of(ip)  # fixed by the address (store.networks.mac_address)
    return {
        "IPAMConfig": None, "Links": None, "Aliases": aliases,
        "NetworkID": getattr(net, "id", network_id), "EndpointID": "",
        "Gateway": getattr(net, "gateway", "") if ip else "", "IPAddress": ip,
        "IPPrefixLen": prefix, "IPv6Gateway": "", "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0, "MacAddress": mac if ip else "", "DriverOpts": None,
    }


def container(rec: Any, path: str, image_config: Mapping[str, Any] | None = None,
              networks: Mapping[str, Any] | None = None,
              volume_path: Callable[[str], str] | None = None) -> dict[str, Any]:
    """Docker's ContainerJSON for a container record.

    path is the container's directory; image_config the "config" object of its image's
    config (ExposedPorts, Volumes, StopSignal, OnBuild); networks maps network names to
    their records (id, gateway, prefix_len), for the per-network endpoint fields;
    volume_path(name) the directory of a volume (its Mounts' Source).
    """
    st = rec.state
    host = rec.host
    icfg = image_config or {}
    nets = networks or {}
    running = st.status == "running"
    from pyminidocker.container.mounts import inspect_mounts, mounts_of

    mounts = inspect_mounts(mounts_of(host), volume_path or (lambda name: ""))
    endpoints = _endpoints(rec, nets, running)
    exposed: dict[str, dict[str, str]] = {
        _port_key(p): {} for p in (icfg.get("ExposedPorts") or {})}
    for key in _port_bindings(host.get("ports", [])):   # -p exposes the port too
        exposed.setdefault(key, {})
    doc: dict[str, Any] = {
        "Id": rec.id,
        "Created": rec.created,
        "Path": rec.argv[0] if rec.argv else "",
        "Args": rec.argv[1:],
        "State": {
            "Status": "paused" if st.paused else st.status, "Running": running,
            "Paused": st.paused, "Restarting": bool(st.restarting and running),
            "OOMKilled": st.oom_killed, "Dead": False, "Pid": st.pid if running else 0,
            "ExitCode": st.exit_code, "Error": st.error,
            "StartedAt": st.started_at or ZERO_TIME, "FinishedAt": st.finished_at or ZERO_TIME,
        },
        "Image": "sha256:" + rec.image,
        "ResolvConfPath": os.path.join(path, "resolv.conf"),
        "HostnamePath": os.path.join(path, "hostname"),
        "HostsPath": os.path.join(path, "hosts"),
        "LogPath": os.path.join(path, f"{rec.id}-json.log"),
        "Name": "/" + rec.name,
        "RestartCount": st.restart_count,
        "Driver": "overlay2",
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": None,
        "HostConfig": _host_config(rec),
        "GraphDriver": {"Data": {
            "LowerDir": "", "MergedDir": os.path.join(path, "rootfs"),
            "UpperDir": os.path.join(path, "upper"), "WorkDir": os.path.join(path, "work"),
        }, "Name": "overlay2"},
        "Mounts": mounts,
        "Config": {
            "Hostname": rec.hostname, "Domainname": host.get("domainname") or "",
            "User": rec.user,
            "AttachStdin": rec.open_stdin, "AttachStdout": True, "AttachStderr": True,
            "ExposedPorts": exposed or None,
            "Tty": rec.tty, "OpenStdin": rec.open_stdin, "StdinOnce": rec.open_stdin,
            "Env": _merged_env(host.get("image_env") or [], rec.env),
            "Cmd": rec.cmd, "Image": rec.image_name, "Volumes": icfg.get("Volumes"),
            "WorkingDir": rec.cwd if rec.cwd != "/" else "", "Entrypoint": rec.entrypoint,
            "OnBuild": icfg.get("OnBuild"), "Labels": StringMap(rec.labels),
        },
        "NetworkSettings": _network_settings(rec, endpoints, exposed, running),
    }
    # the container's own (--stop-signal, --stop-timeout) before its image's, as Docker's
    if host.get("stop_signal") or icfg.get("StopSignal"):
        doc["Config"]["StopSignal"] = host.get("stop_signal") or icfg["StopSignal"]
    if host.get("stop_timeout") is not None:
        doc["Config"]["StopTimeout"] = host["stop_timeout"]
    return doc


def _host_config(rec: Any) -> dict[str, Any]:
    """Docker's HostConfig of a container record."""
    host = rec.host
    mode = host.get("network") or "bridge"
    privileged = bool(host.get("privileged"))
    binds = [*host.get("binds", [])] or None
    tmpfs: dict[str, str] = {}
    if host.get("tmpfs"):
        from pyminidocker.container.mounts import parse_tmpfs

        tmpfs = dict(parse_tmpfs(t) for t in host["tmpfs"])
    # The options as given (seccomp=FILE replaced by the profile's text, as Docker does).
    security_opt = host.get("security_opt") or (
        ["no-new-privileges"] if host.get("no_new_privs") else None)
    return {
        "Binds": binds, "ContainerIDFile": "",
        "LogConfig": {"Type": (host.get("log") or {}).get("driver", "json-file"),
                      "Config": StringMap()},
        "NetworkMode": "default" if mode == "bridge" else mode,
        "PortBindings": _port_bindings(host.get("ports", [])),
        "RestartPolicy": {"Name": (host.get("restart") or {}).get("name", "no"),
                          "MaximumRetryCount": (host.get("restart") or {}).get("max", 0)},
        "AutoRemove": bool(host.get("auto_remove")), "VolumeDriver": "",
        "VolumesFrom": None,
        "CapAdd": host.get("cap_add") or None, "CapDrop": host.get("cap_drop") or None,
        "CgroupnsMode": host.get("cgroupns") or "private",
        "Dns": list(host.get("dns") or []), "DnsOptions": list(host.get("dns_options") or []),
        "DnsSearch": list(host.get("dns_search") or []),
        "ExtraHosts": list(host.get("extra_hosts") or []) or None,
        "GroupAdd": list(host.get("group_add") or []) or None,
        "IpcMode": host.get("ipc_mode") or "private", "Cgroup": "",
        "Links": [f"/{k['name']}:/{rec.name}/{k['alias']}" for k in host["links"]]
        if host.get("links") else None, "OomScoreAdj": host.get("oom_score_adj") or 0,
        "PidMode": host.get("pid_mode") or "", "Privileged": privileged,
        "PublishAllPorts": False, "ReadonlyRootfs": bool(host.get("read_only")),
        "SecurityOpt": security_opt, "UTSMode": host.get("uts_mode") or "",
        "UsernsMode": "", "ShmSize": host.get("shm_size") or 67108864,
        "Runtime": "runc", "ConsoleSize": [0, 0], "Isolation": "",
        "CpuShares": host.get("cpu_shares") or 0, "Memory": host.get("memory") or 0,
        "NanoCpus": round((host.get("cpus") or 0) * 1e9),
        "CgroupParent": host.get("cgroup_parent") or "",
        "BlkioWeight": host.get("blkio_weight") or 0, "BlkioWeightDevice": [],
        **{f"BlkioDevice{name}": [{"Path": path, "Rate": rate} for k, _, rate, path
                                  in host.get("blkio_throttle") or [] if k == kind] or None
           for name, kind in (("ReadBps", "read_bps"), ("WriteBps", "write_bps"),
                              ("ReadIOps", "read_iops"), ("WriteIOps", "write_iops"))},
        "CpuPeriod": host.get("cpu_period") or 0,
        "CpuQuota": host.get("cpu_quota") or 0,
        "CpuRealtimePeriod": host.get("cpu_rt_period") or 0,
        "CpuRealtimeRuntime": host.get("cpu_rt_runtime") or 0,
        "CpusetCpus": host.get("cpuset_cpus") or "",
        "CpusetMems": host.get("cpuset_mems") or "",
        "Devices": [{"PathOnHost": d["host"], "PathInContainer": d["container"],
                     "CgroupPermissions": d["perms"]} for d in host.get("devices") or []],
        "DeviceCgroupRules": list(host.get("device_cgroup_rules") or []) or None,
        "DeviceRequests": None, "KernelMemory": 0, "KernelMemoryTCP": 0,
        "MemoryReservation": host.get("memory_reservation") or 0,
        "MemorySwap": host.get("memory_swap") or 0,
        "MemorySwappiness": host.get("memory_swappiness"),
        "OomKillDisable": bool(host.get("oom_kill_disable")),
        "PidsLimit": host.get("pids_limit"),
        "Ulimits": [{"Name": n, "Soft": v[0], "Hard": v[1]}
                    for n, v in (host.get("ulimits") or {}).items()] or None,
        "CpuCount": 0, "CpuPercent": 0, "IOMaximumIOps": 0, "IOMaximumBandwidth": 0,
        "MaskedPaths": None if privileged else list(MASKED_PATHS),
        "ReadonlyPaths": None if privileged else list(READONLY_PATHS),
        "Tmpfs": tmpfs or None,
        **({"Sysctls": dict(host["sysctls"])} if host.get("sysctls") else {}),
    }


def _endpoints(rec: Any, nets: Mapping[str, Any], running: bool) -> dict[str, Any]:
    """NetworkSettings.Networks: the container's own network and those it was connected to."""
    st, host = rec.state, rec.host
    mode = host.get("network") or "bridge"

    # Docker lists the network even for a stopped container, its address empty
    def aliases(net: str) -> list[str] | None:
        # Docker's: the aliases given for that network, then the short id; user networks only
        if net in ("bridge", "host", "none"):
            return None
        return list(dict.fromkeys([*host.aliases(net), rec.short_id]))

    endpoints: dict[str, Any] = {
        mode: _endpoint(nets.get(mode), st.ip if running else "", aliases=aliases(mode),
                        mac=host.get("mac_address") or "")}
    if host.get("ip") or host.get("link_local_ips"):  # --ip, --link-local-ip, as Docker
        endpoints[mode]["IPAMConfig"] = {
            **({"IPv4Address": host["ip"]} if host.get("ip") else {}),
            **({"LinkLocalIPs": host["link_local_ips"]} if host.get("link_local_ips") else {})}
    # the networks joined by `network connect`, listed while it is stopped too (as Docker)
    for name in dict.fromkeys([*host.networks, *st.extra_networks]):
        ip = st.extra_networks.get(name, {}).get("ip", "") if running else ""
        endpoints[name] = _endpoint(nets.get(name), ip, aliases=aliases(name))
        if name in host.network_ips:
            endpoints[name]["IPAMConfig"] = {"IPv4Address": host.network_ips[name]}
    return endpoints


def _network_settings(rec: Any, endpoints: dict[str, Any], exposed: dict[str, Any],
                      running: bool) -> dict[str, Any]:
    """Docker's NetworkSettings: the default bridge's endpoint repeated at the top level."""
    st = rec.state
    mode = rec.host.get("network") or "bridge"
    main_ep = endpoints.get(mode) if mode == "bridge" else None
    return {
        "Bridge": "", "SandboxID": "", "HairpinMode": False, "LinkLocalIPv6Address": "",
        "LinkLocalIPv6PrefixLen": 0,
        "Ports": published_ports(st.ports, exposed) if running else {},
        "SandboxKey": f"/proc/{st.pid}/ns/net" if running and st.pid else "",
        "SecondaryIPAddresses": None, "SecondaryIPv6Addresses": None,
        "EndpointID": "",
        "Gateway": main_ep["Gateway"] if main_ep else "",
        "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
        "IPAddress": main_ep["IPAddress"] if main_ep else "",
        "IPPrefixLen": main_ep["IPPrefixLen"] if main_ep else 0,
        "IPv6Gateway": "", "MacAddress": main_ep["MacAddress"] if main_ep else "",
        "Networks": endpoints,
    }


def _merged_env(image_env: list[str], env: list[str]) -> list[str]:
    """Config.Env as Docker shows it: the image's variables, overridden by the container's."""
    merged = {e.partition("=")[0]: e for e in image_env}
    merged.update({e.partition("=")[0]: e for e in env})
    return list(merged.values())


def image(rec: Any, config: Mapping[str, Any], size: int, repo_tags: list[str],
          repo_digests: list[str], graph: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Docker's ImageInspect for an image record and its OCI/Docker config document."""
    cfg = dict(config.get("config") or {})
    c = {
        "Hostname": "", "Domainname": "", "User": cfg.get("User", ""),
        "AttachStdin": False, "AttachStdout": False, "AttachStderr": False,
        "ExposedPorts": cfg.get("ExposedPorts"),
        "Tty": False, "OpenStdin": False, "StdinOnce": False, "Env": cfg.get("Env"),
        "Cmd": cfg.get("Cmd"), "Image": cfg.get("Image", ""), "Volumes": cfg.get("Volumes"),
        "WorkingDir": cfg.get("WorkingDir", ""), "Entrypoint": cfg.get("Entrypoint"),
        "OnBuild": cfg.get("OnBuild"), "Labels": StringMap(cfg.get("Labels") or {}) or None,
    }
    if cfg.get("StopSignal"):
        c["StopSignal"] = cfg["StopSignal"]
    container_config = dict(config.get("container_config") or {})
    return {
        "Id": "sha256:" + rec.id,
        "RepoTags": repo_tags,
        "RepoDigests": repo_digests,
        "Parent": "",
        "Comment": config.get("comment", ""),
        "Created": config.get("created") or rec.created or ZERO_TIME,
        "Container": config.get("container", ""),
        "ContainerConfig": {
            "Hostname": container_config.get("Hostname", ""), "Domainname": "",
            "User": container_config.get("User", ""), "AttachStdin": False,
            "AttachStdout": False, "AttachStderr": False, "Tty": False, "OpenStdin": False,
            "StdinOnce": False, "Env": container_config.get("Env"),
            "Cmd": container_config.get("Cmd"), "Image": container_config.get("Image", ""),
            "Volumes": container_config.get("Volumes"),
            "WorkingDir": container_config.get("WorkingDir", ""),
            "Entrypoint": container_config.get("Entrypoint"),
            "OnBuild": container_config.get("OnBuild"),
            "Labels": StringMap(container_config.get("Labels") or {}) or None,
        },
        "DockerVersion": config.get("docker_version", ""),
        "Author": config.get("author", ""),
        "Config": c,
        "Architecture": config.get("architecture", ""),
        **({"Variant": config["variant"]} if config.get("variant") else {}),
        "Os": config.get("os", ""),
        "Size": size,
        "VirtualSize": size,
        "GraphDriver": {"Data": dict(graph or {}), "Name": "overlay2"},
        "RootFS": {"Type": "layers",
                   "Layers": list((config.get("rootfs") or {}).get("diff_ids") or [])},
        "Metadata": {"LastTagTime": rec.loaded or ZERO_TIME},
    }


def network(net: Any, members: Mapping[str, Mapping[str, str]] | None = None
            ) -> dict[str, Any]:
    """Docker's NetworkResource. members maps container ids to {"Name", "IPv4Address"}."""
    ipam_config = [{"Subnet": net.subnet, "Gateway": net.gateway}] if net.subnet else []
    return {
        "Name": net.name,
        "Id": net.id,
        "Created": net.created or ZERO_TIME,
        "Scope": "local",
        "Driver": net.driver,
        "EnableIPv6": False,
        "IPAM": {"Driver": "default", "Options": None if net.driver != "bridge" or
                 net.name != "bridge" else StringMap(), "Config": ipam_config},
        "Internal": bool(getattr(net, "internal", False)),
        "Attachable": False,
        "Ingress": False,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": False,
        "Containers": {cid: {"Name": m.get("Name", ""), "EndpointID": "",
                             "MacAddress": m.get("MacAddress", ""),
                             "IPv4Address": m.get("IPv4Address", ""), "IPv6Address": ""}
                       for cid, m in (members or {}).items()},
        "Options": StringMap(getattr(net, "options", None) or {}),
        "Labels": StringMap(getattr(net, "labels", None) or {}),
    }
