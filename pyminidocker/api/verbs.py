"""/containers/{id}/top, stats, update, pause, unpause, changes: the API face of the engine's
verbs (cli/verbs.py is their CLI face); the engine does the work, this module speaks Docker's
JSON."""
from __future__ import annotations

import asyncio
import time
from typing import Any

from aiohttp import web

from pyminidocker.api import streams
from pyminidocker.api.app import (
    APIError,
    add_table,
    bad_request,
    bool_param,
    call,
    check_fields,
    json_body,
)
from pyminidocker.errors import Conflict, NotFound

# Docker's update body (API 1.43's Resources plus RestartPolicy): engine key of each resource
_UPDATE_KEYS = {
    "Memory": "memory", "MemorySwap": "memory_swap", "MemoryReservation": "memory_reservation",
    "CpuShares": "cpu_shares", "CpuPeriod": "cpu_period", "CpuQuota": "cpu_quota",
    "CpusetCpus": "cpuset_cpus", "CpusetMems": "cpuset_mems", "PidsLimit": "pids_limit",
    "BlkioWeight": "blkio_weight",
}
UPDATE_FIELDS: dict[str, Any] = {k: (str if k.startswith("Cpuset") else int)
                                 for k in _UPDATE_KEYS}
UPDATE_FIELDS.update({name: Any for name in (
    "NanoCpus KernelMemory KernelMemoryTCP CgroupParent BlkioWeightDevice BlkioDeviceReadBps "
    "BlkioDeviceWriteBps BlkioDeviceReadIOps BlkioDeviceWriteIOps CpuRealtimePeriod "
    "CpuRealtimeRuntime Devices DeviceCgroupRules DeviceRequests MemorySwappiness "
    "OomKillDisable Ulimits CpuCount CpuPercent IOMaximumIOps IOMaximumBandwidth").split()})
UPDATE_FIELDS["RestartPolicy"] = {"Name": str, "MaximumRetryCount": int}
# what the engine cannot change on a container: refused unless the client sent its zero value
_NOT_UPDATABLE = set(UPDATE_FIELDS) - set(_UPDATE_KEYS) - {"NanoCpus", "RestartPolicy",
                                                           "KernelMemory"}


def _container(eng: Any, ref: str) -> Any:
    return eng.container(ref)


async def top(request: web.Request) -> web.Response:
    ref = request.match_info["id"]
    ps_args = (request.query.get("ps_args") or "").split()
    titles, rows = await call(request, lambda eng: eng.top(eng.container(ref), ps_args))
    return web.json_response({"Titles": titles, "Processes": rows})


async def changes(request: web.Request) -> web.Response:
    ref = request.match_info["id"]
    kinds = {"C": 0, "A": 1, "D": 2}  # Docker's ChangeType numbers
    found = await call(request, lambda eng: eng.changes(eng.container(ref)))
    # Docker answers null, not [], for a container that changed nothing
    return web.json_response([{"Path": p, "Kind": kinds[k]} for k, p in found] or None)


async def pause(request: web.Request) -> web.Response:
    ref = request.match_info["id"]
    await call(request, lambda eng: eng.pause(eng.container(ref)))
    return web.Response(status=204)


async def unpause(request: web.Request) -> web.Response:
    ref = request.match_info["id"]
    await call(request, lambda eng: eng.unpause(eng.container(ref)))
    return web.Response(status=204)


def update_changes(body: dict[str, Any]) -> dict[str, Any]:
    """The engine's update changes of Docker's update body. Raises APIError (400 for a bad
    body, 501 for a setting the engine cannot change)."""
    from pyminidocker.engine import parse_restart

    check_fields(body, UPDATE_FIELDS)
    out: dict[str, Any] = {}
    for key, name in _UPDATE_KEYS.items():
        value = body.get(key)
        if value not in (None, "") and not (value == 0 and key != "MemorySwap"):
            out[name] = value
    if body.get("NanoCpus"):
        from pyminidocker.engine import check_cpus

        if not isinstance(body["NanoCpus"], int):
            raise bad_request("json: cannot unmarshal into field NanoCpus of type int64")
        out["cpus"] = check_cpus(body["NanoCpus"] / 1e9)
    for key in sorted(_NOT_UPDATABLE):
        value = body.get(key)
        if value not in (None, 0, "", [], False, -1):
            raise APIError(501, f"updating {key} is not supported by pyminidocker yet")
    policy = body.get("RestartPolicy") or {}
    if policy.get("Name"):
        count = policy.get("MaximumRetryCount") or 0
        out["restart"] = parse_restart(policy["Name"] + (f":{count}" if count else ""))
    return out


async def update(request: web.Request) -> web.Response:
    ref = request.match_info["id"]
    body = await json_body(request)
    new = update_changes(body)

    from pyminidocker.api.containers import AUTO_REMOVE

    def work(eng: Any) -> list[str]:
        rec = eng.container(ref)
        auto_remove = rec.host.auto_remove or rec.id in request.app[AUTO_REMOVE]
        if "restart" in new and new["restart"]["name"] != "no" and auto_remove:
            raise Conflict("Restart policy cannot be updated because AutoRemove is enabled "
                           "for the container")
        eng.update(rec, new)
        return eng.warnings()

    warnings = await call(request, work)
    return web.json_response({"Warnings": warnings or None})


# ---- stats -----------------------------------------------------------------------------------

def _rfc3339(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e9):09d}Z"


def _cpu(s: dict[str, Any] | None) -> dict[str, Any]:
    if not s:  # Docker's zero reading: the first of a stream has no previous one
        return {"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0,
                              "usage_in_usermode": 0},
                "throttling_data": {"periods": 0, "throttled_periods": 0,
                                    "throttled_time": 0}}
    return {"cpu_usage": {"total_usage": s["cpu_ns"], "usage_in_kernelmode": 0,
                          "usage_in_usermode": 0},
            "system_cpu_usage": s["system_ns"], "online_cpus": s["online_cpus"],
            "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}}


def stats_doc(rec: Any, now: dict[str, Any] | None, before: dict[str, Any] | None,
              read: float, preread: float | None) -> dict[str, Any]:
    """Docker's stats object (API 1.43, what the docker CLI and docker-py compute CPU % and
    memory from) of two readings of engine.stats (now None: a container that is not running,
    all zero as Docker sends it)."""
    s = now or {}
    io = [{"major": 0, "minor": 0, "op": op, "value": s.get(key, 0)}
          for op, key in (("read", "blk_read"), ("write", "blk_write"))] if now else None
    net = {"rx_bytes": s.get("net_rx", 0), "rx_packets": 0, "rx_errors": 0, "rx_dropped": 0,
           "tx_bytes": s.get("net_tx", 0), "tx_packets": 0, "tx_errors": 0, "tx_dropped": 0}
    limit = rec.host.get("pids_limit")
    return {
        "read": _rfc3339(read) if now else "0001-01-01T00:00:00Z",
        "preread": _rfc3339(preread) if preread and before else "0001-01-01T00:00:00Z",
        "pids_stats": {"current": s["pids"], **({"limit": limit} if limit else {})}
        if now else {},
        "blkio_stats": {"io_service_bytes_recursive": io, "io_serviced_recursive": None,
                        "io_queue_recursive": None, "io_service_time_recursive": None,
                        "io_wait_time_recursive": None, "io_merged_recursive": None,
                        "io_time_recursive": None, "sectors_recursive": None},
        "num_procs": 0, "storage_stats": {},
        "cpu_stats": _cpu(now), "precpu_stats": _cpu(before),
        # usage is already without the inactive file pages (observe.sample), so no
        # stats.inactive_file for the clients to take off again
        "memory_stats": {"usage": s["mem_usage"], "stats": {}, "limit": s["mem_limit"]}
        if now else {},
        "name": "/" + rec.name, "id": rec.id,
        **({"networks": {"eth0": net}} if now and rec.state.ip else {}),
    }


def _reading(eng: Any, rec: Any) -> dict[str, Any] | None:
    try:
        return eng.stats(eng.refresh(rec))  # type: ignore[no-any-return]
    except Conflict:  # not running (any more)
        return None


async def stats(request: web.Request) -> web.StreamResponse:
    """stream (the default): one object a second until the container stops or the client goes;
    stream=false: one object, its CPU figures over a second (two readings, as Docker), or at
    once without the previous reading with one-shot=true."""
    ref = request.match_info["id"]
    stream = bool_param(request, "stream", True)
    one_shot = bool_param(request, "one-shot")
    if one_shot and stream:
        raise bad_request("cannot have stream=true and one-shot=true")
    rec = await call(request, _container, ref)
    before: dict[str, Any] | None = None
    before_at: float | None = None
    if not stream:
        now = await call(request, _reading, rec)
        at = time.time()
        if now is not None and not one_shot:
            await asyncio.sleep(1.0)
            before, before_at = now, at
            now = await call(request, _reading, rec)
            at = time.time()
        return web.json_response(stats_doc(rec, now, before, at, before_at))
    async with streams.JSONStream(request) as out:
        while True:
            try:
                now = await call(request, _reading, rec)
            except NotFound:
                break
            at = time.time()
            await out.send(stats_doc(rec, now, before, at, before_at))
            if now is None:
                break
            before, before_at = now, at
            await asyncio.sleep(1.0)
    return out.response


def add_routes(app: web.Application) -> set[tuple[str, str]]:
    table = [
        ("GET", "/containers/{id}/top", top),
        ("GET", "/containers/{id}/changes", changes),
        ("GET", "/containers/{id}/stats", stats),
        ("POST", "/containers/{id}/update", update),
        ("POST", "/containers/{id}/pause", pause),
        ("POST", "/containers/{id}/unpause", unpause),
    ]
    return add_table(app, table)


__all__ = ["add_routes", "stats_doc", "update_changes"]
