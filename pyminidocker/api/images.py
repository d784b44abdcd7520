"""/images/...: pull (with Docker's JSON progress stream), list, inspect, tag, remove, history,
prune, over the engine API."""
from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from pyminidocker.api.app import (
    APIError,
    add_table,
    bad_request,
    bool_param,
    call,
    engine,
    filters_param,
    status_of,
)
from pyminidocker.api.streams import JSONStream, progress_message
from pyminidocker.errors import PmdError


def _unix(stamp: str) -> int:
    from pyminidocker.humanize import parse_time

    return int(parse_time(stamp) or 0)


async def pull(request: web.Request) -> web.StreamResponse:
    """POST /images/create?fromImage=NAME&tag=TAG|DIGEST[&platform=os/arch]. The stream starts
    with the first progress: an error before it (no such image, a bad name) is a plain error
    response with its status, as dockerd's; an error after it is the stream's last message."""
    from pyminidocker.reference import parse_reference

    if request.query.get("fromSrc") is not None:
        from pyminidocker.api.archives import import_image

        return await import_image(request)
    name = request.query.get("fromImage", "")
    if not name:
        raise bad_request("fromImage is required")
    tag = request.query.get("tag", "")
    if tag:
        name = f"{name}@{tag}" if ":" in tag and tag.startswith("sha256") else f"{name}:{tag}"
    ref = parse_reference(name)  # InvalidReference: 400
    platform = request.query.get("platform") or None
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue()

    def progress(ev: Any) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, ("progress", ev))

    def work(eng: Any) -> Any:
        return eng.pull(ref, platform, progress)

    task = asyncio.ensure_future(call(request, work))
    task.add_done_callback(lambda _: queue.put_nowait(("done", None)))
    stream: JSONStream | None = None
    try:
        while True:
            kind, ev = await queue.get()
            if kind == "done":
                break
            if stream is None:
                stream = JSONStream(request)
                await stream.__aenter__()
                await stream.send({"status": f"Pulling from {ref.repository}",
                                   "id": ref.tag or ref.digest})
            await stream.send(progress_message(ev))
        try:
            res = task.result()
        except PmdError as e:
            if stream is None:
                raise
            await stream.send({"errorDetail": {"message": str(e)}, "error": str(e)})
            await stream.__aexit__(None, None, None)
            return stream.response
        if stream is None:
            stream = JSONStream(request)
            await stream.__aenter__()
            await stream.send({"status": f"Pulling from {ref.repository}",
                               "id": ref.tag or ref.digest})
        await stream.send({"status": f"Digest: {res.digest}"})
        word = "Downloaded newer image" if res.fresh else "Image is up to date"
        await stream.send({"status": f"Status: {word} for {ref.familiar}"})
        await stream.__aexit__(None, None, None)
        return stream.response
    finally:
        # a client that went away: the pull still completes in its thread (it holds the
        # store's locks and leaves the store consistent); nobody waits for it
        if not task.done():
            task.add_done_callback(lambda t: t.exception())


def summary(eng: Any, rec: Any) -> dict[str, Any]:
    from pyminidocker.reference import parse_reference

    tags, digests = [], []
    for n in rec.names:
        r = parse_reference(n)
        if r.digest:
            digests.append(f"{r.familiar_name}@{r.digest}")
        else:
            tags.append(f"{r.familiar_name}:{r.tag}")
    cfg = eng.image_config(rec)
    size = eng.image_size(rec)
    return {"Id": "sha256:" + rec.id, "ParentId": "", "RepoTags": tags,
            "RepoDigests": digests, "Created": _unix(rec.created), "Size": size,
            "VirtualSize": size, "SharedSize": -1, "Containers": -1,
            "Labels": (cfg.get("config") or {}).get("Labels") or {}}


async def list_images(request: web.Request) -> web.Response:
    wanted = filters_param(request)
    bool_param(request, "all")

    def work(eng: Any) -> list[dict[str, Any]]:
        from pyminidocker.engine import filters
        from pyminidocker.humanize import parse_time

        filters.check(wanted, filters.IMAGES_KEYS)
        # filtered as the CLI lists them, a row a tag (an untagged image: one <none> row);
        # an image stays with the tags that passed (Docker's RepoTags under a reference filter)
        rows = []
        for rec in eng.images():
            s = summary(eng, rec)
            created = parse_time(rec.created) or 0.0
            for tag in s["RepoTags"] or ["<none>:<none>"]:
                repo, _, name = tag.rpartition(":")
                rows.append({"Repository": repo, "Tag": name, "ID": rec.id, "Created": created,
                             "Labels": s["Labels"], "summary": s})
        out: dict[str, dict[str, Any]] = {}
        for row in filters.images_of(eng, rows, wanted):
            s = out.setdefault(row["ID"], {**row["summary"], "RepoTags": []})
            if row["Repository"] != "<none>":
                s["RepoTags"].append(f"{row['Repository']}:{row['Tag']}")
        return sorted(out.values(), key=lambda s: -s["Created"])

    return web.json_response(await call(request, work))


async def inspect(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    return web.json_response(await call(request, lambda eng: eng.inspect_image(eng.image(name))))


async def history(request: web.Request) -> web.Response:
    name = request.match_info["name"]

    def work(eng: Any) -> list[dict[str, Any]]:
        rec = eng.image(name)
        cfg = eng.image_config(rec)
        layers = list(eng.store.layers.chain(rec.layer)) if rec.layer else []
        sizes = [layer.uncompressed_size for layer in reversed(layers)]  # bottom first
        out = []
        for h in cfg.get("history") or []:
            size = 0 if h.get("empty_layer") or not sizes else sizes.pop(0)
            out.append({"Id": "<missing>", "Created": _unix(h.get("created", "")),
                        "CreatedBy": h.get("created_by", ""), "Tags": None, "Size": size,
                        "Comment": h.get("comment", "")})
        out.reverse()
        if out:
            out[0]["Id"] = "sha256:" + rec.id
            out[0]["Tags"] = summary(eng, rec)["RepoTags"]
        return out

    return web.json_response(await call(request, work))


async def tag(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    repo = request.query.get("repo", "")
    if not repo:
        raise bad_request("repository name (repo) is required")
    t = request.query.get("tag", "")
    await call(request, lambda eng: eng.tag(name, f"{repo}:{t}" if t else repo))
    return web.Response(status=201)


def _conflict(e: PmdError) -> APIError:
    # the engine says "conflict: ..." for an image in use or named in several repositories
    status = 409 if str(e).startswith("conflict") else status_of(e)
    return APIError(status, str(e))


async def remove(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    force = bool_param(request, "force")
    try:
        done = await call(request, lambda eng: eng.remove_image(name, force))
    except PmdError as e:
        raise _conflict(e) from None
    return web.json_response([{k: v} for k, v in done])


async def prune(request: web.Request) -> web.Response:
    wanted = filters_param(request)

    def work(eng: Any) -> dict[str, Any]:
        from pyminidocker.engine import filters

        every = wanted.get("dangling", ["true"]) in (["false"], ["0"])
        done, reclaimed = eng.prune_images(all=every, keep=filters.image_prune_keep(eng, wanted))
        return {"ImagesDeleted": [{k: v} for k, v in done] or None,
                "SpaceReclaimed": reclaimed}

    return web.json_response(await call(request, work))


def add_routes(app: web.Application) -> set[tuple[str, str]]:
    table = [
        ("POST", "/images/create", pull),
        ("GET", "/images/json", list_images),
        ("POST", "/images/prune", prune),
        ("GET", "/images/{name:.+}/json", inspect),
        ("GET", "/images/{name:.+}/history", history),
        ("POST", "/images/{name:.+}/tag", tag),
        ("DELETE", "/images/{name:.+}", remove),
    ]
    return add_table(app, table)


__all__ = ["add_routes", "engine"]
