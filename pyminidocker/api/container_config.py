"""Docker's container config, the body of POST /containers/create: checked as dockerd checks it
and mapped onto the engine's CreateOptions. Unknown fields and wrong types are refused; a
setting the engine does not have is refused with 501 rather than silently ignored."""
from __future__ import annotations

from typing import Any

from pyminidocker.api.app import APIError, bad_request, check_fields

# Docker's container create body (API 1.43): every field a client may send, with its JSON
# type; Any where the value's shape is checked where it is used. Unknown fields are refused.
_HOST_CONFIG: dict[str, Any] = {name: Any for name in (
    "ContainerIDFile LogConfig VolumeDriver VolumesFrom ConsoleSize Annotations "
    "CgroupnsMode Dns DnsOptions DnsSearch ExtraHosts GroupAdd IpcMode Cgroup Links OomScoreAdj "
    "PidMode StorageOpt UTSMode UsernsMode ShmSize Sysctls Runtime Isolation CpuShares "
    "CgroupParent BlkioWeight BlkioWeightDevice BlkioDeviceReadBps BlkioDeviceWriteBps "
    "BlkioDeviceReadIOps BlkioDeviceWriteIOps CpuPeriod CpuQuota CpuRealtimePeriod "
    "CpuRealtimeRuntime CpusetCpus CpusetMems Devices DeviceCgroupRules DeviceRequests "
    "KernelMemory KernelMemoryTCP MemoryReservation MemorySwap MemorySwappiness OomKillDisable "
    "Ulimits CpuCount CpuPercent IOMaximumIOps IOMaximumBandwidth Mounts MaskedPaths "
    "ReadonlyPaths Init").split()}
_HOST_CONFIG.update({
    "Binds": list, "NetworkMode": str, "PortBindings": dict, "AutoRemove": bool,
    "CapAdd": list, "CapDrop": list, "Privileged": bool, "PublishAllPorts": bool,
    "ReadonlyRootfs": bool, "SecurityOpt": list, "Tmpfs": dict, "Memory": int,
    "NanoCpus": int, "PidsLimit": int,
    "RestartPolicy": {"Name": str, "MaximumRetryCount": int},
})
CREATE_FIELDS: dict[str, Any] = {
    "Hostname": str, "Domainname": str, "User": str, "AttachStdin": bool, "AttachStdout": bool,
    "AttachStderr": bool, "ExposedPorts": dict, "Tty": bool, "OpenStdin": bool,
    "StdinOnce": bool, "Env": list, "Cmd": (list, str), "Healthcheck": dict,
    "ArgsEscaped": bool, "Image": str, "Volumes": dict, "WorkingDir": str,
    "Entrypoint": (list, str), "NetworkDisabled": bool, "MacAddress": str, "OnBuild": list,
    "Labels": dict[str, str], "StopSignal": str, "StopTimeout": int, "Shell": list,
    "HostConfig": _HOST_CONFIG, "NetworkingConfig": {"EndpointsConfig": dict},
    "Platform": str,
}
_IGNORED_WHEN_EMPTY = set(_HOST_CONFIG) - {
    "ConsoleSize",  # the initial size of a console this server runs (Interactive)
    "Binds", "NetworkMode", "PortBindings", "AutoRemove", "CapAdd", "CapDrop", "Privileged",
    "PublishAllPorts", "ReadonlyRootfs", "SecurityOpt", "Tmpfs", "Memory", "NanoCpus",
    "PidsLimit", "Mounts", "RestartPolicy"}


def _empty(value: Any) -> bool:
    """A zero value as Go clients send them for what they do not set."""
    if isinstance(value, dict):
        return all(_empty(v) or (k == "Name" and v == "no") for k, v in value.items())
    if isinstance(value, list):
        return all(_empty(v) for v in value)
    return value in (None, False, 0, "", -1)


def create_options(body: dict[str, Any], name: str | None) -> Any:
    """The engine's CreateOptions of a create body. Raises APIError: 400 for a malformed body,
    501 for a setting the engine does not have yet (rather than silently ignoring it)."""
    from pyminidocker.engine import CreateOptions

    check_fields(body, CREATE_FIELDS)
    if not body.get("Image"):
        raise bad_request("Config cannot be empty in order to create a container")
    host = body.get("HostConfig") or {}
    for key in sorted(_IGNORED_WHEN_EMPTY):
        if key in host and not _empty(host[key]):
            raise APIError(501, f"HostConfig.{key} is not supported by pyminidocker yet")
    for key in ("Shell", "OnBuild"):
        if not _empty(body.get(key)):
            raise APIError(501, f"{key} is not supported by pyminidocker yet")
    entrypoint, cmd = _command(body)
    network, endpoint = _network(body, host)
    nano = host.get("NanoCpus") or 0
    return CreateOptions(
        image=body["Image"], cmd=cmd, name=name, env=_strings(body.get("Env"), "Env"),
        workdir=body.get("WorkingDir") or None, user=body.get("User") or None,
        entrypoint=entrypoint, hostname=body.get("Hostname") or None,
        read_only=bool(host.get("ReadonlyRootfs")),
        volumes=_volumes(body, host), mounts=[mount_spec(m) for m in host.get("Mounts") or []],
        tmpfs=[f"{p}:{o}" if o else p for p, o in (host.get("Tmpfs") or {}).items()],
        memory=host.get("Memory") or None, cpus=nano / 1e9 if nano else None,
        pids_limit=host.get("PidsLimit") or None, network=network,
        privileged=bool(host.get("Privileged")),
        cap_add=_strings(host.get("CapAdd"), "HostConfig.CapAdd"),
        cap_drop=_strings(host.get("CapDrop"), "HostConfig.CapDrop"),
        security_opt=_strings(host.get("SecurityOpt"), "HostConfig.SecurityOpt"),
        tty=bool(body.get("Tty")), interactive=bool(body.get("OpenStdin")),
        auto_remove=bool(host.get("AutoRemove")), publish=_publish(host),
        publish_all=bool(host.get("PublishAllPorts")),
        extra=_extra(body, host, network, endpoint),
    )


def _strings(value: Any, field: str) -> list[str]:
    """A list of strings (or one string) of the body. Raises APIError(400)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not all(isinstance(v, str) for v in value):
        raise bad_request(f"json: cannot unmarshal into field {field} of type []string")
    return list(value)


def _command(body: dict[str, Any]) -> tuple[str | None, list[str]]:
    """The engine's entrypoint word and command of Entrypoint and Cmd."""
    cmd = _strings(body.get("Cmd"), "Cmd")
    if body.get("Entrypoint") is None:
        return None, cmd
    ep = _strings(body["Entrypoint"], "Entrypoint")
    # the engine takes one entrypoint word; the others lead the command, as they would in
    # the argv Docker makes of Entrypoint + Cmd
    return (ep[0] if ep else ""), ep[1:] + cmd


def _publish(host: dict[str, Any]) -> list[str]:
    """PortBindings as --publish values ([HOSTIP:][HOSTPORT:]PORT/PROTO)."""
    publish = []
    for port, bindings in (host.get("PortBindings") or {}).items():
        if not isinstance(bindings, list | None) or not all(
                isinstance(b, dict | None) and all(isinstance(v, str | None)
                                                   for v in (b or {}).values())
                for b in bindings or []):
            raise bad_request(f"json: cannot unmarshal into field HostConfig.PortBindings."
                              f"{port} of type []nat.PortBinding")
        for b in bindings or [{}]:
            hip, hport = (b or {}).get("HostIp") or "", (b or {}).get("HostPort") or ""
            publish.append(":".join(x for x in (hip, hport) if x) + f":{port}"
                           if hip or hport else port)
    return publish


def _network(body: dict[str, Any], host: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The network the container joins, and its endpoint settings. Raises APIError(400)."""
    network = host.get("NetworkMode") or "bridge"
    if network == "default":
        network = "bridge"
    endpoints = ((body.get("NetworkingConfig") or {}).get("EndpointsConfig") or {})
    for name, settings in endpoints.items():
        if not isinstance(settings, dict | None):
            raise bad_request(f"json: cannot unmarshal {type(settings).__name__} into field "
                              f"NetworkingConfig.EndpointsConfig.{name} of type "
                              "network.EndpointSettings")
    if len(endpoints) > 1:
        raise bad_request("Container cannot be connected to network endpoints: "
                          + ", ".join(endpoints))
    if endpoints and network == "bridge":
        network = next(iter(endpoints))
    endpoint = endpoints.get(network) or {}
    # the docker CLI names the default network "default", in NetworkMode and EndpointsConfig
    return ("bridge" if network == "default" else network), endpoint


def endpoint_address(endpoint: dict[str, Any]) -> str | None:
    """EndpointSettings.IPAMConfig.IPv4Address (create's and network connect's), None if not
    given. Raises APIError: 400 for a wrong type, 501 for the rest of IPAMConfig (IPv6 and
    link-local addresses). Clients send the fields they do not use empty (compose: IPAMConfig
    {} or with "")."""
    ipam = endpoint.get("IPAMConfig") or {}
    if not isinstance(ipam, dict):
        raise bad_request("json: cannot unmarshal into field EndpointSettings.IPAMConfig of "
                          "type network.EndpointIPAMConfig")
    ip = ipam.get("IPv4Address") or None
    if ip is not None and not isinstance(ip, str):
        raise bad_request("json: cannot unmarshal into field IPAMConfig.IPv4Address of type "
                          "string")
    if any(v for k, v in ipam.items() if k != "IPv4Address"):
        raise APIError(501, "IPv6 and link-local endpoint addresses are not supported by "
                       "pyminidocker yet")
    return ip


def _extra(body: dict[str, Any], host: dict[str, Any], network: str,
           endpoint: dict[str, Any]) -> dict[str, Any]:
    """CreateOptions.extra: labels, network aliases, healthcheck, restart policy."""
    labels = body.get("Labels") or {}  # map[string]string: check_fields saw to it
    extra: dict[str, Any] = {"labels": dict(labels)} if labels else {}
    if body.get("StopSignal"):
        from pyminidocker.engine import parse_signal

        parse_signal(body["StopSignal"])  # UsageError: a 400 in Docker's words
        extra["stop_signal"] = body["StopSignal"]
    if body.get("StopTimeout") is not None:
        extra["stop_timeout"] = body["StopTimeout"]
    aliases = _strings(endpoint.get("Aliases"), "EndpointsConfig.Aliases")
    if aliases and network not in ("bridge", "host", "none"):  # Docker: user networks only
        extra["aliases"] = aliases
    ip = endpoint_address(endpoint)
    if ip is not None:
        if network in ("bridge", "host", "none"):
            raise bad_request("user specified IP address is supported on user defined networks "
                              "only")
        extra["ip"] = ip
    health = healthcheck(body.get("Healthcheck"))
    if health is not None:
        extra["health_flags"] = health
    policy = host.get("RestartPolicy") or {}
    if policy.get("Name") and policy["Name"] != "no":
        from pyminidocker.engine import parse_restart

        count = policy.get("MaximumRetryCount") or 0
        extra["restart"] = parse_restart(policy["Name"] + (f":{count}" if count else ""))
        if host.get("AutoRemove"):
            raise bad_request("can't create 'AutoRemove' container with restart policy")
    return extra


def _volumes(body: dict[str, Any], host: dict[str, Any]) -> list[str]:
    """Binds, then Config.Volumes as anonymous volumes unless a bind or mount already covers
    the path (docker-compose names every volume target there as well as in Binds)."""
    binds = _strings(host.get("Binds"), "HostConfig.Binds")
    covered = {b.split(":")[1] if ":" in b else b for b in binds}
    covered |= {m["Target"] for m in host.get("Mounts") or [] if isinstance(m, dict)
                and isinstance(m.get("Target"), str)}
    return binds + [path for path in (body.get("Volumes") or {}) if path not in covered]


_HEALTH_FIELDS = {"Test": list, "Interval": int, "Timeout": int, "Retries": int,
                  "StartPeriod": int, "StartInterval": int}


def healthcheck(hc: dict[str, Any] | None) -> dict[str, Any] | None:
    """The container's healthcheck settings of a create body's Healthcheck (durations in ns,
    0 for the image's), as the engine takes them from --health-*; None when it sets none.
    Raises APIError(400) as dockerd checks them."""
    if not hc:
        return None
    check_fields(hc, _HEALTH_FIELDS, "Healthcheck.")
    test = hc.get("Test") or []
    if not all(isinstance(t, str) for t in test):
        raise bad_request("json: cannot unmarshal into field Healthcheck.Test of type []string")
    if test and test[0] not in ("NONE", "CMD", "CMD-SHELL"):
        raise bad_request(f"unknown healthcheck type {test[0]!r}: NONE, CMD or CMD-SHELL")
    if test and test[0] != "NONE" and len(test) < 2:
        raise bad_request(f"healthcheck {test[0]} needs a command")
    out: dict[str, Any] = {"Test": list(test)} if test else {}
    for key in ("Interval", "Timeout", "StartPeriod"):
        value = hc.get(key) or 0
        if value < 0:
            raise bad_request(f"{key} in Healthcheck cannot be negative")
        if 0 < value < 1_000_000:
            raise bad_request(f"{key} in Healthcheck cannot be less than 1ms")
        if value:
            out[key] = value
    if (hc.get("Retries") or 0) < 0:
        raise bad_request("Retries in Healthcheck cannot be negative")
    if hc.get("Retries"):
        out["Retries"] = hc["Retries"]
    return out or None


_MOUNT_FIELDS: dict[str, Any] = {
    "Type": str, "Source": str, "Target": str, "ReadOnly": bool, "Consistency": str,
    "BindOptions": {"Propagation": str, "NonRecursive": bool, "CreateMountpoint": bool,
                    "ReadOnlyNonRecursive": bool, "ReadOnlyForceRecursive": bool},
    "VolumeOptions": {"NoCopy": bool, "Labels": dict, "Subpath": str,
                      "DriverConfig": {"Name": str, "Options": dict}},
    "TmpfsOptions": {"SizeBytes": int, "Mode": int},
}


def mount_spec(m: Any) -> str:
    """The --mount text of one of HostConfig.Mounts: the engine checks and plans it as it
    does the flag's (container.mounts.parse_mount). Raises APIError(400)."""
    if not isinstance(m, dict):
        raise bad_request("json: cannot unmarshal into field HostConfig.Mounts of type "
                          "mount.Mount")
    check_fields(m, _MOUNT_FIELDS, "Mounts.")
    fields = [("type", m.get("Type") or ""), ("source", m.get("Source") or ""),
              ("target", m.get("Target") or "")]
    if m.get("ReadOnly"):
        fields.append(("readonly", "true"))
    if m.get("Consistency"):
        fields.append(("consistency", m["Consistency"]))
    bind = m.get("BindOptions") or {}
    if bind.get("Propagation"):
        fields.append(("bind-propagation", bind["Propagation"]))
    vol = m.get("VolumeOptions") or {}
    if vol.get("NoCopy"):
        fields.append(("volume-nocopy", "true"))
    if vol.get("Subpath"):
        raise APIError(501, "VolumeOptions.Subpath is not supported by pyminidocker yet")
    fields += [("volume-label", f"{k}={v}") for k, v in (vol.get("Labels") or {}).items()]
    driver = vol.get("DriverConfig") or {}
    if driver.get("Name"):
        fields.append(("volume-driver", driver["Name"]))
    fields += [("volume-opt", f"{k}={v}") for k, v in (driver.get("Options") or {}).items()]
    tmpfs = m.get("TmpfsOptions") or {}
    if tmpfs.get("SizeBytes"):
        fields.append(("tmpfs-size", str(tmpfs["SizeBytes"])))
    if tmpfs.get("Mode"):
        fields.append(("tmpfs-mode", f"{tmpfs['Mode']:o}"))
    fields = [(k, v) for k, v in fields if v != ""]
    for k, v in fields:
        if not isinstance(v, str) or "," in v:  # the flag's syntax has no quoting
            raise bad_request(f"invalid mount {k}: {v!r}")
    return ",".join(f"{k}={v}" for k, v in fields)

__all__ = ["CREATE_FIELDS", "create_options", "healthcheck", "mount_spec"]
