"""Docker's API versions, error bodies and request bounds, and the helpers every endpoint
module shares (parameters, the engine in a worker thread); pyminidocker.api.routes makes the
aiohttp application of them.

Every endpoint is served both unversioned (`/containers/json`) and versioned
(`/v1.43/containers/json`), as dockerd does. A version outside [MIN_API_VERSION,
API_VERSION] is refused with Docker's message; clients that ask for more (the docker CLI 28
asks for 1.50 unless told otherwise) first read `API-Version` from `/_ping` and come down to
ours. Errors are Docker's: a JSON body `{"message": ...}` with the status code Docker uses
(400 bad input, 404 unknown object, 409 conflict, 500 engine failure, 501 not implemented).
"""
from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiohttp import web

from pyminidocker import __version__
from pyminidocker.errors import Conflict, NotFound, PmdError

API_VERSION = "1.43"       # Docker 24's
MIN_API_VERSION = "1.24"   # Docker 1.12's, the oldest current clients fall back to
SERVER_HEADER = f"pyminidocker/{__version__} (linux)"

# Bounds on what a client may send: a JSON body (create with a full HostConfig is a few kB),
# and the time to send it. Archive uploads stream and are bounded by their own endpoint.
MAX_JSON_BODY = 1 << 20
BODY_TIMEOUT = 30.0

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

ACTIVITY = web.AppKey("activity", object)     # the server's idle timer (server.Activity) or None
CONFIG = web.AppKey("config", object)          # the engine's Config (pyminidocker.config)
VERSION = web.RequestKey("api_version", str)   # the API version the client asked for

_VERSIONED = re.compile(r"^/v(\d+\.\d+)(/.*)$")


def version_tuple(v: str) -> tuple[int, int]:
    major, _, minor = v.partition(".")
    return int(major), int(minor)


class APIError(Exception):
    """An error the client gets as Docker's body, {"message": ...}, with this status."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def error_response(status: int, message: str) -> web.Response:
    # exactly "application/json": the docker CLI reads the message only from a body of that
    # type (aiohttp's content_type= and text= would add "; charset=utf-8")
    return web.Response(status=status, body=json.dumps({"message": message}).encode() + b"\n",
                        headers={"Content-Type": "application/json"})


def bad_request(message: str) -> APIError:
    return APIError(400, message)


def not_implemented(what: str) -> APIError:
    return APIError(501, f"{what} is not implemented by pyminidocker yet")


def status_of(e: PmdError) -> int:
    """The HTTP status Docker answers for an engine error of this kind."""
    if isinstance(e, NotFound):
        return 404
    if isinstance(e, Conflict):
        return 409
    if isinstance(e, ValueError):  # UsageError, InvalidReference, ...
        return 400
    return 500


@web.middleware
async def docker_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure leaves as Docker's JSON error, never as a traceback or an HTML page."""
    try:
        return await handler(request)
    except APIError as e:
        return error_response(e.status, e.message)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        message = {404: "page not found", 405: "method not allowed"}.get(e.status, e.reason)
        return error_response(e.status, message)
    except PmdError as e:
        return error_response(status_of(e), str(e))
    except (ConnectionError, asyncio.CancelledError):
        raise  # the client went away: nothing to answer
    except Exception as e:
        request.app.logger.exception("internal error on %s %s", request.method, request.path)
        return error_response(500, f"internal error: {type(e).__name__}: {e}")


@web.middleware
async def api_versions(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The version a client asked for in the path, checked, kept as request["api_version"]."""
    m = _VERSIONED.match(request.path)
    version = API_VERSION
    if m:
        version = m.group(1)
        asked = version_tuple(version)
        if asked > version_tuple(API_VERSION):
            raise APIError(400, f"client version {version} is too new. Maximum supported "
                           f"API version is {API_VERSION}")
        if asked < version_tuple(MIN_API_VERSION):
            raise APIError(400, f"client version {version} is too old. Minimum supported "
                           f"API version is {MIN_API_VERSION}, please upgrade your client "
                           "to a newer version")
    request[VERSION] = version
    return await handler(request)


async def docker_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Every response, errors and streams too, names the server and its API version."""
    response.headers["Server"] = SERVER_HEADER
    response.headers["Api-Version"] = API_VERSION


def route(app: web.Application, method: str, path: str, handler: Handler) -> None:
    """Serve handler at path, unversioned and under /v{version}."""
    app.router.add_route(method, path, handler)
    app.router.add_route(method, r"/v{version:\d+\.\d+}" + path, handler)


def add_table(app: web.Application, table: Sequence[tuple[str, str, Handler]]
              ) -> set[tuple[str, str]]:
    """Route each (method, path, handler); the (method, path) pairs now served."""
    for method, path, handler in table:
        route(app, method, path, handler)
    return {(m, p) for m, p, _ in table}


# ---- request bodies and parameters -----------------------------------------------------

async def json_body(request: web.Request, fields: dict[str, Any] | None = None,
                    optional: bool = False) -> dict[str, Any]:
    """The request's JSON object, read within BODY_TIMEOUT and MAX_JSON_BODY; with fields
    (name -> type or tuple of types), unknown names and wrong types are refused too.
    Raises APIError(400)."""
    if request.content_length is not None and request.content_length > MAX_JSON_BODY:
        raise APIError(413, f"request body is larger than {MAX_JSON_BODY} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(BODY_TIMEOUT):
            # read() returns what has arrived, not the whole body: read to its end
            while size <= MAX_JSON_BODY and (chunk := await request.content.read(65536)):
                chunks.append(chunk)
                size += len(chunk)
        data = b"".join(chunks)
    except TimeoutError:
        raise APIError(408, f"request body not received within {BODY_TIMEOUT:g} s") from None
    if len(data) > MAX_JSON_BODY:
        raise APIError(413, f"request body is larger than {MAX_JSON_BODY} bytes")
    if not data.strip():
        if optional:
            return {}
        raise bad_request("request body is empty: a JSON object was expected")
    try:
        body = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise bad_request(f"invalid JSON: {e}") from None
    if body is None and optional:
        return {}
    if not isinstance(body, dict):
        raise bad_request(f"invalid JSON: expected an object, got {_json_type(body)}")
    if fields is not None:
        check_fields(body, fields)
    return body


def check_fields(body: dict[str, Any], fields: dict[str, Any], where: str = "") -> None:
    """Unknown fields and wrong types are refused (null is accepted for any field, as Go's
    decoder does, and an unknown field that is null says nothing: docker-py 7.1's
    run(network=X) sends NetworkingConfig {X: null}, which dockerd ignores). Raises
    APIError(400)."""
    for name, value in body.items():
        if name not in fields:
            if value is None:
                continue
            raise bad_request(f"json: unknown field {where + name!r}")
        want = fields[name]
        if value is None or want is Any:
            continue
        if isinstance(want, dict):
            if not isinstance(value, dict):
                raise bad_request(f"json: cannot unmarshal {_json_type(value)} into field "
                                  f"{where}{name} of type object")
            check_fields(value, want, f"{where}{name}.")
            continue
        if want == dict[str, str]:  # Labels, Options: Go's map[string]string
            if not isinstance(value, dict) or not all(isinstance(v, str)
                                                      for v in value.values()):
                raise bad_request(f"json: cannot unmarshal {_json_type(value)} into field "
                                  f"{where}{name} of type map[string]string")
            continue
        ok = isinstance(value, want) and not (isinstance(value, bool) and want in (int, float))
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            ok = True
        if not ok:
            raise bad_request(f"json: cannot unmarshal {_json_type(value)} into field "
                              f"{where}{name} of type {_go_type(want)}")
        if want is int and not -2**63 <= value < 2**63:  # Go's int64
            raise bad_request(f"json: cannot unmarshal number {value} into field "
                              f"{where}{name} of type int64")


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def _go_type(want: Any) -> str:
    names = {bool: "bool", int: "int64", float: "float64", str: "string", list: "array",
             dict: "object"}
    if isinstance(want, tuple):
        return " or ".join(names.get(w, str(w)) for w in want)
    return names.get(want, str(want))


def bool_param(request: web.Request, name: str, default: bool = False) -> bool:
    """A boolean query parameter as Docker reads them: 1/true/True, 0/false/False, or empty."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("1", "true", "yes"):
        return True
    if raw.lower() in ("0", "false", "no"):
        return False
    raise bad_request(f"invalid value for {name}: {raw!r} is not a boolean")


def int_param(request: web.Request, name: str, default: int | None = None) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise bad_request(f"invalid value for {name}: {raw!r} is not an integer") from None


def filters_param(request: web.Request) -> dict[str, list[str]]:
    """Docker's `filters` parameter: {"name": ["a", "b"]} or the older {"name": {"a": true}}."""
    raw = request.query.get("filters")
    if not raw:
        return {}
    try:
        parsed = json.loads(raw)
    except ValueError as e:
        raise bad_request(f"invalid filter: {e}") from None
    if not isinstance(parsed, dict):
        raise bad_request("invalid filter: expected a JSON object")
    out: dict[str, list[str]] = {}
    for key, value in parsed.items():
        if isinstance(value, dict):
            out[key] = [k for k, on in value.items() if on]
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            out[key] = list(value)
        else:
            raise bad_request(f"invalid filter {key!r}: expected a list of strings")
    return out


# ---- the engine ---------------------------------------------------------------------------

ENGINE = web.AppKey("engine", dict)  # {"engine": Engine}, made on first use


def engine(request: web.Request) -> Any:
    """The app's pyminidocker.engine.Engine (one per server: its store is opened once, on
    the first request that needs it)."""
    holder = request.app[ENGINE]
    if "engine" not in holder:
        from pyminidocker.engine import Engine

        config: Any = request.app[CONFIG]
        holder["engine"] = Engine(config=config) if config is not None else Engine()
    return holder["engine"]


async def call(request: web.Request, fn: Callable[..., Any], *args: Any) -> Any:
    """fn(engine, *args) in a worker thread: the engine blocks (store locks, the kernel,
    registries), the event loop must not."""
    eng = engine(request)
    return await asyncio.get_running_loop().run_in_executor(None, fn, eng, *args)
