"""/containers/...: create (Docker's body mapped onto the engine's CreateOptions), start, stop,
restart, kill, wait, logs, attach, list, inspect, remove, rename, prune, over the engine API."""
from __future__ import annotations

import asyncio
import fcntl
import os
import signal
import struct
import termios
import time
from typing import Any

from aiohttp import web

from pyminidocker.api import streams
from pyminidocker.api.app import (
    ACTIVITY,
    APIError,
    add_table,
    bad_request,
    bool_param,
    call,
    check_fields,
    filters_param,
    int_param,
    json_body,
    labels_match,
)
from pyminidocker.errors import Conflict, NotFound, PmdError, UsageError, suppress

# Docker's container create body (API 1.43): every field a client may send, with its JSON
# type; Any where the value's shape is checked where it is used. Unknown fields are refused.
_HOST_CONFIG: dict[str, Any] = {name: Any for name in (
    "ContainerIDFile LogConfig RestartPolicy VolumeDriver VolumesFrom ConsoleSize Annotations "
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
})
CREATE_FIELDS: dict[str, Any] = {
    "Hostname": str, "Domainname": str, "User": str, "AttachStdin": bool, "AttachStdout": bool,
    "AttachStderr": bool, "ExposedPorts": dict, "Tty": bool, "OpenStdin": bool,
    "StdinOnce": bool, "Env": list, "Cmd": (list, str), "Healthcheck": dict,
    "ArgsEscaped": bool, "Image": str, "Volumes": dict, "WorkingDir": str,
    "Entrypoint": (list, str), "NetworkDisabled": bool, "MacAddress": str, "OnBuild": list,
    "Labels": dict, "StopSignal": str, "StopTimeout": int, "Shell": list,
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

    def strings(value: Any, field: str) -> list[str]:
        if value is None:
            return []
        if isinstance(value, str):
            return [value]
        if not all(isinstance(v, str) for v in value):
            raise bad_request(f"json: cannot unmarshal into field {field} of type []string")
        return list(value)

    cmd = strings(body.get("Cmd"), "Cmd")
    entrypoint: str | None = None
    if "Entrypoint" in body and body["Entrypoint"] is not None:
        ep = strings(body["Entrypoint"], "Entrypoint")
        # the engine takes one entrypoint word; the others lead the command, as they
        # would in the argv Docker makes of Entrypoint + Cmd
        entrypoint = ep[0] if ep else ""
        cmd = ep[1:] + cmd
    publish = []
    for port, bindings in (host.get("PortBindings") or {}).items():
        for b in bindings or [{}]:
            hip, hport = (b or {}).get("HostIp", ""), (b or {}).get("HostPort", "")
            publish.append(":".join(x for x in (hip, hport) if x) + f":{port}"
                           if hip or hport else port)
    network = host.get("NetworkMode") or "bridge"
    if network == "default":
        network = "bridge"
    endpoints = ((body.get("NetworkingConfig") or {}).get("EndpointsConfig") or {})
    if len(endpoints) > 1:
        raise bad_request("Container cannot be connected to network endpoints: "
                          + ", ".join(endpoints))
    if endpoints and network == "bridge":
        network = next(iter(endpoints))
    labels = body.get("Labels") or {}
    if not all(isinstance(v, str) for v in labels.values()):
        raise bad_request("json: cannot unmarshal into field Labels of type map[string]string")
    extra: dict[str, Any] = {"labels": dict(labels)} if labels else {}
    aliases = strings((endpoints.get(network) or {}).get("Aliases"),
                      "EndpointsConfig.Aliases")
    if aliases and network not in ("bridge", "host", "none"):  # Docker: user networks only
        extra["aliases"] = aliases
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
    binds = strings(host.get("Binds"), "HostConfig.Binds")
    mounts = [mount_spec(m) for m in host.get("Mounts") or []]
    # Config.Volumes: anonymous volumes, unless a bind or mount already covers the path
    # (docker-compose names every volume target here as well as in Binds)
    covered = {b.split(":")[1] if ":" in b else b for b in binds}
    covered |= {m["Target"] for m in host.get("Mounts") or []}
    volumes = binds + [path for path in (body.get("Volumes") or {}) if path not in covered]
    nano = host.get("NanoCpus") or 0
    return CreateOptions(
        image=body["Image"], cmd=cmd, name=name, env=strings(body.get("Env"), "Env"),
        workdir=body.get("WorkingDir") or None, user=body.get("User") or None,
        entrypoint=entrypoint, hostname=body.get("Hostname") or None,
        read_only=bool(host.get("ReadonlyRootfs")),
        volumes=volumes, mounts=mounts,
        tmpfs=[f"{p}:{o}" if o else p for p, o in (host.get("Tmpfs") or {}).items()],
        memory=host.get("Memory") or None, cpus=nano / 1e9 if nano else None,
        pids_limit=host.get("PidsLimit") or None, network=network,
        privileged=bool(host.get("Privileged")),
        cap_add=strings(host.get("CapAdd"), "HostConfig.CapAdd"),
        cap_drop=strings(host.get("CapDrop"), "HostConfig.CapDrop"),
        security_opt=strings(host.get("SecurityOpt"), "HostConfig.SecurityOpt"),
        tty=bool(body.get("Tty")), interactive=bool(body.get("OpenStdin")),
        auto_remove=bool(host.get("AutoRemove")), publish=publish,
        publish_all=bool(host.get("PublishAllPorts")),
        extra=extra,
    )


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


# AutoRemove: the server removes the container once it has exited, rather than its monitor
# (`run -d --rm`'s way), so that it knows the exit code it reports to `wait` after the record
# is gone (docker run --rm asks for it then). Until the server has seen it exit, it stays up.
AUTO_REMOVE = web.AppKey("auto_remove", set)
CONSOLE_SIZE = web.AppKey("console_size", dict)  # id -> (rows, columns) asked at create
ATTACHED = web.AppKey("attached", dict)  # container id -> attach streams reading its output
REMOVERS = web.AppKey("removers", set)
SUMMARIES = web.AppKey("summaries", dict)  # id -> (record, its list entry), the last list's


async def create(request: web.Request) -> web.Response:
    body = await json_body(request)
    opts = create_options(body, request.query.get("name") or None)
    auto_remove, opts.auto_remove = opts.auto_remove, False
    rec = await call(request, lambda eng: eng.create(opts))
    if auto_remove:
        request.app[AUTO_REMOVE].add(rec.id)
    size = (body.get("HostConfig") or {}).get("ConsoleSize") or []
    if len(size) == 2 and all(isinstance(n, int) and n > 0 for n in size):
        request.app[CONSOLE_SIZE][rec.id] = (size[0], size[1])
    return web.json_response({"Id": rec.id, "Warnings": []}, status=201)


async def _remove_when_exited(request: web.Request, cid: str) -> None:
    from pyminidocker.api.events import removing

    activity = request.app[ACTIVITY]
    if activity is not None:
        activity.hold()  # type: ignore[attr-defined]
    try:
        def check(eng: Any) -> bool:
            rec = eng.refresh(eng.container(cid))
            if rec.state.status == "running":
                return False
            removing(request.app, rec)  # its exit code, for wait and events
            eng.remove(rec)
            return True

        deadline = time.monotonic() + 10
        while True:
            # its output is still on its way to an attached client: that reads its log
            if request.app[ATTACHED].get(cid) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
                continue
            try:
                if await call(request, check):
                    break
            except NotFound:
                break
            except PmdError as e:
                request.app.logger.warning("--rm of %s: %s", cid[:12], e)
                break
            await asyncio.sleep(0.05)
    finally:
        request.app[AUTO_REMOVE].discard(cid)
        if activity is not None:
            activity.release()  # type: ignore[attr-defined]


def _container(eng: Any, ref: str) -> Any:
    return eng.container(ref)


def _refresh(eng: Any, rec: Any) -> Any:
    return eng.refresh(rec)


async def start(request: web.Request) -> web.Response:
    ref = request.match_info["id"]
    rec = await call(request, _container, ref)
    if rec.state.status == "running":
        return web.Response(status=304)
    session = request.app[INTERACTIVE].get(rec.id)
    if session is not None and not session.taken.is_set():
        await session.start(request, rec)
        return web.Response(status=204)
    request.app[CONSOLE_SIZE].pop(rec.id, None)  # a detached console is its monitor's

    def work(eng: Any) -> bool:
        rec = eng.container(ref)
        if rec.state.status == "running":
            return False
        eng.start(rec, attach=False)
        return True

    started = await call(request, work)
    if started and rec.id in request.app[AUTO_REMOVE]:
        tasks = request.app[REMOVERS]  # held here: a task nobody refers to may be collected
        task = asyncio.ensure_future(_remove_when_exited(request, rec.id))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    return web.Response(status=204 if started else 304)


def _settle(fut: asyncio.Future[None], error: BaseException | None) -> None:
    """The first word on fut wins: started, or the start's failure."""
    if fut.done():
        return
    if error is None:
        fut.set_result(None)
    else:
        fut.set_exception(error)


INTERACTIVE = web.AppKey("interactive", dict)  # container id -> Interactive, until its start


class Interactive:
    """`docker run -i` (and `-it`): the client attaches with stdin before it starts the
    container. The engine has no way into a detached container's stdin, so such a container
    is started attached instead, by the server (as `pyminidocker run -i` starts it): its stdin
    a pipe (or its console, with a tty) fed by the hijacked connection, its output pumped
    back. The server is then its parent: it runs as long as the connection is open (an open
    connection keeps the server from its idle exit)."""

    def __init__(self, resp: streams.Hijacked, want_out: bool, want_err: bool):
        self.resp = resp
        self.want = (want_out, want_err)
        self.taken = asyncio.Event()
        self.fds: dict[str, int] = {}
        self.console = -1
        self.task: asyncio.Future[Any] | None = None

    async def start(self, request: web.Request, rec: Any) -> None:
        """Start rec attached to this session; return once it runs. Raises what the
        engine's start raises."""
        loop = asyncio.get_running_loop()
        in_r, in_w = os.pipe() if not rec.tty else (-1, -1)
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe() if not rec.tty else (-1, -1)
        for fd in (in_w, out_r, err_r):
            if fd >= 0:
                os.set_blocking(fd, False)
        self.fds = {"in": in_w, "out": out_r, "err": err_r}
        started: asyncio.Future[None] = loop.create_future()

        def on_started(proc: Any) -> None:
            if rec.tty:
                self.console = proc.console_fd
                rows, cols = request.app[CONSOLE_SIZE].pop(rec.id, (24, 80))
                fcntl.ioctl(self.console, termios.TIOCSWINSZ,
                            struct.pack("HHHH", rows, cols, 0, 0))
            loop.call_soon_threadsafe(_settle, started, None)

        def work(eng: Any) -> Any:
            try:
                return eng.start(rec, attach=True, stdio=(in_r, out_w,
                                                          err_w if err_w >= 0 else out_w),
                                 on_started=on_started)
            finally:
                for fd in (in_r, out_w, err_w):
                    if fd >= 0:
                        os.close(fd)
                if rec.id in request.app[AUTO_REMOVE]:
                    from pyminidocker.api.events import removing

                    request.app[AUTO_REMOVE].discard(rec.id)
                    with suppress(PmdError):
                        last = eng.container(rec.id)
                        removing(request.app, last)
                        eng.remove(last, force=True)

        self.task = asyncio.ensure_future(call(request, work))
        self.task.add_done_callback(lambda t: _settle(
            started, t.exception() or RuntimeError("the container exited at once")))
        try:
            await started
        except BaseException:
            for fd in self.fds.values():
                if fd >= 0:
                    os.close(fd)
            self.fds = {}
            raise
        finally:
            self.taken.set()

    async def serve(self, tty: bool) -> None:
        """Pass input and output until the container has exited and its output is sent."""
        await self.taken.wait()
        if not self.fds or self.task is None:
            return  # its start failed: the start request said so
        pumps = [asyncio.ensure_future(streams.pump(self.fds["out"], streams.STDOUT, tty,
                                                    self.resp, self.want[0]))]
        if self.fds["err"] >= 0:
            pumps.append(asyncio.ensure_future(streams.pump(
                self.fds["err"], streams.STDERR, False, self.resp, self.want[1])))
        in_w = self.fds["in"]
        feeder = asyncio.ensure_future(streams.feed(
            self.resp, lambda: self.console if tty else in_w, in_w, tty))
        try:
            await asyncio.gather(*pumps)
            with suppress(PmdError):
                await self.task
        finally:
            feeder.cancel()
            if self.console >= 0:
                os.close(self.console)
                self.console = -1


async def stop(request: web.Request) -> web.Response:
    ref = request.match_info["id"]
    timeout = int_param(request, "t", 10)

    def work(eng: Any) -> bool:
        rec = eng.container(ref)
        if rec.state.status != "running":
            return False
        eng.stop(rec, timeout)
        return True

    return web.Response(status=204 if await call(request, work) else 304)


async def restart(request: web.Request) -> web.Response:
    ref = request.match_info["id"]
    timeout = int_param(request, "t", 10)

    def work(eng: Any) -> None:
        rec = eng.container(ref)
        eng.stop(rec, timeout)
        eng.start(eng.container(ref), attach=False)

    await call(request, work)
    return web.Response(status=204)


async def kill(request: web.Request) -> web.Response:
    from pyminidocker.engine import parse_signal

    ref = request.match_info["id"]
    try:
        sig = parse_signal(request.query.get("signal") or "KILL")
    except PmdError as e:
        raise bad_request(str(e)) from None
    def work(eng: Any) -> None:
        rec = eng.container(ref)
        eng.kill(rec, sig)
        if sig == signal.SIGKILL:  # as dockerd, answer once a SIGKILLed container is gone
            eng.wait(rec)

    await call(request, work)
    return web.Response(status=204)


async def wait(request: web.Request) -> web.StreamResponse:
    """The headers go at once (the docker CLI waits for them before it starts the container:
    the wait is in place), the exit code once the condition is met."""
    ref = request.match_info["id"]
    condition = request.query.get("condition") or "not-running"
    if condition not in ("not-running", "next-exit", "removed"):
        raise bad_request(f"invalid condition: {condition!r}")
    from pyminidocker.api.events import REMOVED

    try:
        first = await call(request, _container, ref)
    except NotFound:
        gone = next((r for r in request.app[REMOVED].values()
                     if ref in (r.id, r.name) or (len(ref) >= 12 and r.id.startswith(ref))),
                    None)
        if gone is None:
            raise
        return web.json_response({"StatusCode": gone.state.exit_code, "Error": None})
    before = (first.state.status, first.state.finished_at)
    resp = web.StreamResponse()
    resp.content_type = "application/json"
    await resp.prepare(request)
    last = first
    session = request.app[INTERACTIVE].get(first.id)
    if session is not None and condition != "not-running":
        # a container this server runs attached: its start's result is the word on its
        # exit (the store's record is written by that start, and removed after it with --rm)
        await session.taken.wait()
        code = 125
        if session.task is not None:
            with suppress(PmdError):
                code = int(await asyncio.shield(session.task) or 0)
        await resp.write(web.json_response({"StatusCode": code, "Error": None}).body)  # type: ignore[arg-type]
        await resp.write_eof()
        return resp
    while True:
        try:
            rec = await call(request, _refresh, last)
        except NotFound:
            gone = request.app[REMOVED].get(last.id)
            if gone is not None:  # removed by this server: it saw the exit
                last = gone
            if condition == "removed" or last is first or gone is not None:
                break
            raise
        last = rec
        st = rec.state
        if st.status != "running":
            done = condition == "not-running" or \
                ((st.status, st.finished_at) != before and st.status == "exited")
            if done and condition != "removed":
                break
        await asyncio.sleep(0.02)
    code = last.state.exit_code
    await resp.write(web.json_response({"StatusCode": code, "Error": None}).body)  # type: ignore[arg-type]
    await resp.write_eof()
    return resp


def _port_map(rec: Any) -> dict[str, Any]:
    ports: dict[str, Any] = {}
    for mapping in rec.state.ports:  # "80/tcp -> 0.0.0.0:8080"
        inside, _, outside = mapping.partition(" -> ")
        hip, _, hport = outside.rpartition(":")
        ports.setdefault(inside, []).append({"HostIp": hip, "HostPort": hport})
    return ports


def summary(eng: Any, rec: Any) -> dict[str, Any]:
    import shlex

    from pyminidocker.humanize import parse_time, status_text

    now = time.time()
    ports = []
    for inside, binds in _port_map(rec).items():
        port, _, proto = inside.partition("/")
        for b in binds:
            ports.append({"IP": b["HostIp"], "PrivatePort": int(port),
                          "PublicPort": int(b["HostPort"]), "Type": proto or "tcp"})
    network = rec.host.get("network") or "bridge"
    nets = {network: {"IPAddress": rec.state.ip}} if rec.state.ip else {}
    nets.update({n: {"IPAddress": i.get("ip", "")} for n, i in
                 rec.state.extra_networks.items()})
    return {
        "Id": rec.id, "Names": ["/" + rec.name], "Image": rec.image_name,
        "ImageID": "sha256:" + rec.image, "Command": shlex.join(rec.argv),
        "Created": int(parse_time(rec.created) or 0), "Ports": ports, "Labels": rec.labels,
        "State": rec.state.status, "Status": status_text(rec.state, now, eng.health(rec)),
        "HostConfig": {"NetworkMode": network}, "NetworkSettings": {"Networks": nets},
        "Mounts": [],
    }


def _matches(s: dict[str, Any], filters: dict[str, list[str]]) -> bool:
    for key, wanted in filters.items():
        if key == "id":
            ok = any(s["Id"].startswith(w) for w in wanted)
        elif key == "name":
            ok = any(w.lstrip("/") in s["Names"][0].lstrip("/") for w in wanted)
        elif key == "status":
            ok = s["State"] in wanted
        elif key == "label":
            ok = labels_match(s["Labels"], wanted)
        elif key == "ancestor":
            ok = any(w in (s["Image"], s["ImageID"], s["ImageID"][7:19]) for w in wanted)
        elif key == "network":
            ok = any(w in s["NetworkSettings"]["Networks"] for w in wanted)
        else:
            raise bad_request(f"invalid filter '{key}'")
        if not ok:
            return False
    return True


async def list_containers(request: web.Request) -> web.Response:
    show_all = bool_param(request, "all")
    limit = int_param(request, "limit", -1) or -1
    filters = filters_param(request)

    def work(eng: Any) -> list[dict[str, Any]]:
        from pyminidocker.humanize import status_text

        recs = eng.container_views()
        if not (show_all or "status" in filters):
            recs = [r for r in recs if r.state.status == "running"]
        # the same record as last time (container_views keeps a stopped container's): the
        # same summary but for its age
        seen, now = request.app[SUMMARIES], time.time()
        fresh = {}
        for r in recs:
            hit = seen.get(r.id)
            if hit is not None and hit[0] is r:
                # its age and health ("Up 3 seconds (healthy)": compose 2.x's ps shows no other)
                fresh[r.id] = (r, {**hit[1], "Status": status_text(r.state, now, eng.health(r))})
            else:
                fresh[r.id] = (r, summary(eng, r))
        request.app[SUMMARIES] = fresh
        out = [s for _, s in fresh.values() if _matches(s, filters)]
        return out[:limit] if limit > 0 else out

    return web.json_response(await call(request, work))


async def inspect(request: web.Request) -> web.Response:
    ref = request.match_info["id"]

    def work(eng: Any) -> dict[str, Any]:
        rec = eng.container(ref)
        doc = eng.inspect_container(rec)
        doc.setdefault("NetworkSettings", {})["Ports"] = _port_map(rec)
        doc["State"]["Pid"] = rec.state.pid
        doc.setdefault("Config", {})["AttachStdin"] = False
        # what clients read without checking (docker-py's run reads LogConfig.Type)
        doc["HostConfig"].setdefault("LogConfig", {"Type": "json-file", "Config": {}})
        if rec.id in request.app[AUTO_REMOVE]:
            doc["HostConfig"]["AutoRemove"] = True
        doc["HostConfig"].setdefault("RestartPolicy", {"Name": "no", "MaximumRetryCount": 0})
        doc["HostConfig"]["PortBindings"] = {k: v for k, v in _port_map(rec).items()}
        doc["RestartCount"] = 0
        doc["Driver"] = "overlay2"
        doc["Platform"] = "linux"
        return doc

    return web.json_response(await call(request, work))


async def remove(request: web.Request) -> web.Response:
    ref = request.match_info["id"]
    force = bool_param(request, "force")
    bool_param(request, "v")  # anonymous volumes: there are none yet
    if bool_param(request, "link"):
        raise APIError(501, "links are not supported by pyminidocker")
    def work(eng: Any) -> None:
        from pyminidocker.api.events import removing

        rec = eng.container(ref, corrupt_ok=force)
        removing(request.app, rec)
        eng.remove(rec, force)

    await call(request, work)
    return web.Response(status=204)


async def rename(request: web.Request) -> web.Response:
    ref = request.match_info["id"]
    name = request.query.get("name", "")
    if not name:
        raise bad_request("name is required")
    await call(request, lambda eng: eng.rename(eng.container(ref), name))
    return web.Response(status=204)


async def prune(request: web.Request) -> web.Response:
    if filters_param(request):
        raise APIError(501, "container prune filters are not supported by pyminidocker yet")
    removed = await call(request, lambda eng: eng.prune_containers())
    return web.json_response({"ContainersDeleted": removed or None, "SpaceReclaimed": 0})


# ---- output: logs and attach ---------------------------------------------------------------

async def _records(request: web.Request, rec: Any, tail: int | None, follow: bool,
                   skip: int = 0) -> Any:
    """The container's log records, from a worker thread (following blocks), as they come.
    A client that goes away stops the reader at its next record."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=256)
    gone = False

    def work(eng: Any) -> None:
        n = 0
        try:
            for r in eng.logs(rec, tail=tail, follow=follow):
                if gone:
                    return
                n += 1
                if n <= skip:
                    continue
                asyncio.run_coroutine_threadsafe(queue.put(r), loop).result()
        finally:
            loop.call_soon_threadsafe(queue.put_nowait, None)

    task = asyncio.ensure_future(call(request, work))
    try:
        while (r := await queue.get()) is not None:
            yield r
        await task
    finally:
        gone = True
        while not queue.empty():
            queue.get_nowait()


def _chunk(r: dict[str, str], tty: bool, timestamps: bool) -> bytes:
    data = (f"{r.get('time', '')} " if timestamps else "").encode() + r["log"].encode()
    if tty:
        return data
    return streams.frame(streams.STDERR if r.get("stream") == "stderr" else streams.STDOUT,
                         data)


async def logs(request: web.Request) -> web.StreamResponse:
    ref = request.match_info["id"]
    want_out = bool_param(request, "stdout")
    want_err = bool_param(request, "stderr")
    if not (want_out or want_err):
        raise bad_request("Bad parameters: you must choose at least one stream")
    follow = bool_param(request, "follow")
    timestamps = bool_param(request, "timestamps")
    raw_tail = request.query.get("tail", "all")
    tail = None
    if raw_tail not in ("", "all"):
        try:
            tail = int(raw_tail)
        except ValueError:
            raise bad_request(f"invalid value for tail: {raw_tail!r}") from None
    rec = await call(request, _container, ref)
    resp = web.StreamResponse()
    resp.content_type = streams.RAW_STREAM if rec.tty else streams.MULTIPLEXED_STREAM
    await resp.prepare(request)
    async for r in _records(request, rec, tail, follow):
        err = r.get("stream") == "stderr"
        if (err and want_err) or (not err and want_out):
            await resp.write(_chunk(r, rec.tty, timestamps))
    await resp.write_eof()
    return resp


async def attach(request: web.Request) -> web.StreamResponse:
    """The container's output from now on (with logs=1, what it wrote before too), over a
    hijacked connection, until it has exited. With stdin, to a container not started yet
    (`docker run -i`), the start makes an Interactive session of it; to a running container
    started with -i and no tty (its monitor keeps its stdin), what the client sends goes to
    its stdin up to the detach keys (detachKeys, default ctrl-p,ctrl-q), which end the
    attach; to any other, what the client sends is dropped."""
    ref = request.match_info["id"]
    want_out = bool_param(request, "stdout")
    want_err = bool_param(request, "stderr")
    with_logs = bool_param(request, "logs")
    rec = await call(request, _container, ref)
    resp = streams.Hijacked(request, multiplexed=not rec.tty)
    if bool_param(request, "stdin") and rec.open_stdin and rec.state.status == "created":
        session = Interactive(resp, want_out, want_err)
        sessions = request.app[INTERACTIVE]
        sessions[rec.id] = session
        await resp.start()
        try:
            await session.serve(rec.tty)
        finally:
            del sessions[rec.id]
        return resp
    stdin = None
    if bool_param(request, "stdin"):
        try:
            stdin = await call(request, lambda eng: eng.open_stdin(
                rec, request.query.get("detachKeys") or None))
        except UsageError as e:
            raise bad_request(str(e)) from None
    await resp.start()
    attached = request.app[ATTACHED]
    attached[rec.id] = attached.get(rec.id, 0) + 1
    try:
        return await _attached_output(request, rec, resp, want_out, want_err, with_logs,
                                      stdin)
    finally:
        if stdin is not None:
            stdin.close()
        attached[rec.id] -= 1
        if not attached[rec.id]:
            del attached[rec.id]


async def _attached_output(request: web.Request, rec: Any, resp: streams.Hijacked,
                           want_out: bool, want_err: bool, with_logs: bool,
                           stdin: Any = None) -> web.StreamResponse:
    output: asyncio.Future[Any] | None = None

    async def drain_input() -> None:
        """The client's input: to the container's stdin (a StdinWriter) or dropped; the
        detach keys end the attach."""
        while data := await resp.input.stream.read(65536):
            if stdin is None:
                continue
            try:
                detached = await call(request, lambda eng: stdin.write(data))
            except OSError:
                return  # the container is gone: its output's end closes the attach
            if detached and output is not None:
                output.cancel()
                return

    reader = asyncio.ensure_future(drain_input())
    output = asyncio.ensure_future(_send_output(request, rec, resp, want_out, want_err,
                                                with_logs))
    try:
        await output
    except asyncio.CancelledError:
        if not output.cancelled():
            raise
    finally:
        reader.cancel()
    return resp


async def _send_output(request: web.Request, rec: Any, resp: streams.Hijacked,
                       want_out: bool, want_err: bool, with_logs: bool) -> None:
    try:
        skip = 0
        if not with_logs:  # what was logged before we came is not ours
            skip = await call(request, lambda eng: sum(1 for _ in eng.logs(rec)))
        # wait for a container that is not started yet (docker run attaches first)
        while rec.state.status == "created":
            await asyncio.sleep(0.02)
            rec = await call(request, _refresh, rec)
        async for r in _records(request, rec, None, True, skip):
            err = r.get("stream") == "stderr"
            if (err and want_err) or (not err and want_out):
                await resp.send(_chunk(r, rec.tty, False))
    except PmdError:
        # removed (--rm) as soon as it exited, its record caught half gone: what it wrote
        # was sent; the headers are long gone, so there is no error to answer anyway
        pass


async def resize(request: web.Request) -> web.Response:
    """The console of a container this server runs attached (`docker run -it`); a detached
    container's console is its monitor's, out of reach."""
    ref = request.match_info["id"]
    h, w = int_param(request, "h", 0) or 0, int_param(request, "w", 0) or 0
    if h <= 0 or w <= 0:
        raise bad_request("bad parameters: h and w must be positive")
    rec = await call(request, _container, ref)
    session = request.app[INTERACTIVE].get(rec.id)
    if session is None or session.console < 0:
        raise APIError(501, "resizing the console of a container not run through this "
                       "server's attach is not implemented by pyminidocker yet")
    fcntl.ioctl(session.console, termios.TIOCSWINSZ, struct.pack("HHHH", h, w, 0, 0))
    return web.Response(status=200)


def add_routes(app: web.Application) -> set[tuple[str, str]]:
    app[INTERACTIVE] = {}
    app[AUTO_REMOVE] = set()
    app[CONSOLE_SIZE] = {}
    app[ATTACHED] = {}
    app[REMOVERS] = set()
    app[SUMMARIES] = {}
    table = [
        ("POST", "/containers/create", create),
        ("GET", "/containers/json", list_containers),
        ("POST", "/containers/prune", prune),
        ("GET", "/containers/{id}/json", inspect),
        ("POST", "/containers/{id}/start", start),
        ("POST", "/containers/{id}/stop", stop),
        ("POST", "/containers/{id}/restart", restart),
        ("POST", "/containers/{id}/kill", kill),
        ("POST", "/containers/{id}/wait", wait),
        ("GET", "/containers/{id}/logs", logs),
        ("POST", "/containers/{id}/attach", attach),
        ("POST", "/containers/{id}/resize", resize),
        ("POST", "/containers/{id}/rename", rename),
        ("DELETE", "/containers/{id}", remove),
    ]
    return add_table(app, table)


__all__ = ["CREATE_FIELDS", "Conflict", "add_routes", "create_options"]
