"""The pull pipeline: reference → manifest (→ platform) → config → layers → image record.

Blobs are streamed from the registry straight into the C extractor through a pipe, so each
layer is downloaded, decompressed, hashed and written in one pass with no temporary copy; up to
`max_concurrent_downloads` layers run at once, each in its own staging directory. Layers are
registered bottom-up under the store lock once both their blob digest and their diff-id are
verified; the image record comes last. A layer another process is fetching is waited for (its
per-layer lock), never fetched twice.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from pyminidocker.config import Config
from pyminidocker.errors import (
    LayerError,
    PmdError,
    RegistryError,
    StoreError,
    UnsupportedMedia,
    VerificationError,
    suppress,
)
from pyminidocker.image.manifest import is_index, layer_compression, parse_manifest
from pyminidocker.image.platforms import Platform, host_platform, select_manifest
from pyminidocker.image.registry import RegistryClient
from pyminidocker.native.extract import (
    COMPRESS_GZIP,
    COMPRESS_NONE,
    COMPRESS_ZSTD,
    ExtractResult,
    layer_extract,
)
from pyminidocker.record import dataclass
from pyminidocker.reference import Reference
from pyminidocker.store import Store
from pyminidocker.store.files import FileLock
from pyminidocker.store.images import ImageRecord
from pyminidocker.store.layers import LayerRecord, chain_ids, now_iso, tree_digest

_COMPRESSION = {
    "none": COMPRESS_NONE, "gzip": COMPRESS_GZIP, "zstd": COMPRESS_ZSTD,
}
_PIPE_SIZE = 1 << 20  # fewer wakeups between the downloading and the extracting thread


@dataclass(frozen=True)
class Progress:
    """One event of a pull, for the CLI to render. `id` is the short id of a layer (12 hex of
    its blob digest) or "" for the pull as a whole."""
    id: str
    status: str
    current: int = 0
    total: int = 0


@dataclass(frozen=True)
class PullResult:
    image_id: str        # config digest hex
    digest: str          # digest the reference resolved to (index or manifest)
    reference: Reference
    fresh: bool          # False when the image and all its layers were already there


class _Cancelled(Exception):
    pass


def _short(digest: str) -> str:
    return digest.removeprefix("sha256:")[:12]


class _LayerJob:
    """Fetches one layer into a staging directory, holding the layer's lock until released."""

    def __init__(self, puller: Puller, index: int, desc: dict[str, Any], diff_id: str,
                 chain_id: str, parent: str | None):
        self.p = puller
        self.index = index
        self.desc = desc
        self.diff_id = diff_id
        self.chain_id = chain_id
        self.parent = parent
        self.short = _short(desc["digest"])
        self.lock: FileLock = puller.store.layer_lock(chain_id)
        self.staging: str | None = None
        self.record: LayerRecord | None = None
        self.future: Future[None] = Future()

    def run(self) -> None:
        try:
            self._run()
            self.future.set_result(None)
        except BaseException as e:
            self.future.set_exception(e)

    def _run(self) -> None:
        with self.p.slots:
            if self.p.cancel.is_set():
                raise _Cancelled()
            self.lock.acquire()
            if self.p.store.layers.exists(self.chain_id):
                return  # another pull registered it while we waited for its lock
            self.staging = self.p.store.layers.prepare(self.chain_id)
            self._fetch()

    def _fetch(self) -> None:
        assert self.staging is not None
        comp = _COMPRESSION[layer_compression(self.desc.get("mediaType", ""))]
        total = int(self.desc.get("size", 0))
        r, w = os.pipe2(os.O_CLOEXEC)
        try:
            fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, _PIPE_SIZE)
        except OSError:
            pass
        result: dict[str, Any] = {}

        diff = os.path.join(self.staging, "diff")

        def extract() -> None:
            try:
                result["ok"] = layer_extract(r, diff, comp)
            except BaseException as e:
                result["error"] = e
            finally:
                os.close(r)

        t = threading.Thread(target=extract, name=f"extract-{self.short}", daemon=True)
        t.start()
        # The blob is hashed here too: when the extractor stops early (a corrupt or hostile
        # tar), the rest is still read and hashed, so a damaged blob is reported as such.
        hasher = hashlib.sha256()
        extractor_gone = False
        partial = _Partial(self.p.store, self.desc["digest"], total)

        def feed(chunk: bytes) -> None:
            nonlocal extractor_gone
            if self.p.cancel.is_set():
                raise _Cancelled()
            hasher.update(chunk)
            if extractor_gone:
                return
            view = memoryview(chunk)
            try:
                while view:
                    view = view[os.write(w, view):]
            except BrokenPipeError:
                extractor_gone = True

        def sink(chunk: bytes) -> None:
            feed(chunk)
            partial.append(chunk)

        def progress(n: int) -> None:
            self.p.emit(Progress(self.short, "Downloading", n, total))

        try:
            # what an interrupted pull kept: replayed, then only the rest is asked for
            offset = partial.replay(feed)
            self.p.emit(Progress(self.short, "Downloading", offset, total))
            self.p.client.stream_blob(self.p.ref.repository, self.desc, sink, progress,
                                      offset=offset)
        except VerificationError:
            partial.discard()  # the registry sent other bytes than the kept ones continue
            raise
        finally:
            os.close(w)
            t.join()
            partial.close()
        digest = "sha256:" + hasher.hexdigest()
        partial.discard()  # whole: verified (or not) below, never to be resumed
        if digest != self.desc["digest"]:
            raise VerificationError(
                f"blob {self.desc['digest']} is corrupt: its content has digest {digest}")
        if "error" in result:
            raise layer_error(result["error"], self.desc["digest"]) from None
        self._verify(result["ok"])

    def _verify(self, res: ExtractResult) -> None:
        digest, size = self.desc["digest"], int(self.desc.get("size", -1))
        self.p.emit(Progress(self.short, "Verifying Checksum"))
        if res.compressed_digest != digest:
            raise VerificationError(
                f"blob {digest} is corrupt: its content has digest {res.compressed_digest}")
        if size >= 0 and res.compressed_size != size:
            raise VerificationError(
                f"blob {digest} has {res.compressed_size} bytes, its descriptor says {size}")
        if res.diff_id != self.diff_id:
            raise VerificationError(
                f"layer {digest} uncompresses to {res.diff_id}, "
                f"but the image config says {self.diff_id}")
        self.p.emit(Progress(self.short, "Download complete"))
        assert self.staging is not None
        diff = os.path.join(self.staging, "diff")
        try:  # what the verified tar became, for `system check --full` (from the page cache)
            tree = tree_digest(diff)
        except OSError as e:
            raise layer_error(e, digest) from None
        self.p.store.layers.flush(self.staging)  # here, in parallel, not under the store lock
        self.record = LayerRecord(
            id=self.chain_id, parent=self.parent, diff_id=self.diff_id,
            compressed_digest=digest, compressed_size=res.compressed_size,
            uncompressed_size=res.uncompressed_size,
            media_type=self.desc.get("mediaType", ""), created=now_iso(), tree_digest=tree,
        )

    def finish(self) -> None:
        """Drop what is left of the job (a staging dir not committed) and release the lock."""
        if self.staging is not None and os.path.exists(self.staging):
            self.p.store.discard(self.staging)
        self.lock.release()


class _Partial:
    """The bytes of a blob downloaded so far, kept in <root>/partial/<hex> so that the next
    pull, after an interrupted one (Ctrl-C, kill -9, a registry that stopped answering), asks
    only for the rest with a Range request. Held under a flock: a second pull of the same
    blob meanwhile downloads it whole without keeping it. Best effort: a full disk or any
    other failure only means no resume."""

    def __init__(self, store: Any, digest: str, size: int):
        self.path = os.path.join(store.root, "partial", digest.removeprefix("sha256:"))
        self.size = size
        self.fd = -1
        try:
            os.makedirs(os.path.dirname(self.path), mode=0o700, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return
        self.fd = fd

    def replay(self, feed: Callable[[bytes], None]) -> int:
        """Feed what was kept; returns its length (0: start from the beginning)."""
        if self.fd < 0:
            return 0
        try:
            have = os.fstat(self.fd).st_size
            if have >= self.size > 0 or self.size <= 0:
                os.ftruncate(self.fd, 0)  # nothing to resume: start over
                return 0
            done = 0
            while done < have:
                chunk = os.pread(self.fd, min(CHUNK, have - done), done)
                if not chunk:
                    break
                feed(chunk)
                done += len(chunk)
            os.lseek(self.fd, done, os.SEEK_SET)
            return done
        except OSError:
            self.close()
            return 0

    def append(self, chunk: bytes) -> None:
        if self.fd < 0:
            return
        try:
            view = memoryview(chunk)
            while view:
                view = view[os.write(self.fd, view):]
        except OSError:
            self.close()  # full disk: the pull goes on, only without a resume point
            with suppress(OSError):
                os.unlink(self.path)

    def discard(self) -> None:
        with suppress(OSError):
            os.unlink(self.path)
        self.close()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


CHUNK = 1 << 20


def layer_error(e: BaseException, digest: str) -> PmdError:
    if isinstance(e, PmdError):
        return e
    if isinstance(e, OSError):
        if e.errno == 28:
            return StoreError(f"cannot extract layer {digest}: no space left on device")
        where = f" ({e.filename})" if e.filename else ""
        return LayerError(f"refusing layer {digest}: {e.strerror}{where}")
    return LayerError(f"cannot extract layer {digest}: {e}")


class Puller:
    """Pulls one reference into the store. Library code: reports through `on_event` only."""

    def __init__(self, store: Store, config: Config, ref: Reference,
                 platform: Platform | None = None,
                 on_event: Callable[[Progress], None] | None = None,
                 client: RegistryClient | None = None):
        self.store = store
        self.config = config
        self.ref = ref
        self.platform = platform or host_platform()
        self._on_event = on_event
        self.client = client or RegistryClient(config, ref.registry)
        self.cancel = threading.Event()
        self.committed: list[str] = []  # layers this pull registered, for _rollback
        self.slots = threading.BoundedSemaphore(max(1, config.max_concurrent_downloads))
        self._emit_lock = threading.Lock()

    def emit(self, ev: Progress) -> None:
        if self._on_event is not None:
            with self._emit_lock:
                self._on_event(ev)

    def resolve(self) -> tuple[str, bytes, dict[str, Any]]:
        """The digest the reference resolves to, and the image manifest for our platform."""
        repo = self.ref.repository
        m = self.client.get_manifest(repo, self.ref.digest or self.ref.tag or "latest")
        top = m.digest
        doc = parse_manifest(m)
        depth = 0
        while is_index(m.media_type):
            depth += 1
            if depth > 4:
                raise UnsupportedMedia(f"{self.ref}: index nesting is too deep")
            desc = select_manifest(doc.get("manifests", []), self.platform)
            m = self.client.get_manifest(repo, desc["digest"])
            doc = parse_manifest(m)
        return top, m.body, doc

    def pull(self) -> PullResult:
        """Raises RegistryError, VerificationError, LayerError, StoreError, UnsupportedMedia."""
        self.store.ensure()
        top_digest, manifest_bytes, manifest = self.resolve()
        cfg_desc = manifest.get("config") or {}
        if "digest" not in cfg_desc:
            raise UnsupportedMedia(f"{self.ref}: manifest has no config")
        image_id = cfg_desc["digest"].removeprefix("sha256:")
        config_bytes = self._local_config(image_id) or \
            self.client.get_blob(self.ref.repository, cfg_desc)
        config = parse_config(config_bytes, cfg_desc["digest"])
        layers = manifest.get("layers") or []
        diff_ids = config["rootfs"]["diff_ids"]
        if len(diff_ids) != len(layers):
            raise VerificationError(
                f"image {cfg_desc['digest']} lists {len(diff_ids)} diff-ids "
                f"for {len(layers)} layers")
        for desc in layers:
            layer_compression(desc.get("mediaType", ""))  # refuse unknown types up front
        chains = chain_ids(diff_ids)
        names = [f"{self.ref.name}@{top_digest}"]
        if self.ref.tag:
            names.insert(0, f"{self.ref.name}:{self.ref.tag}")
        big_data = {"sha256:" + image_id: config_bytes, "manifest": manifest_bytes}
        fresh = False
        try:
            # A layer found in the store may be removed by a concurrent rmi before our image
            # record protects it; then it is fetched again.
            for _ in range(3):
                fresh = self._fetch_layers(layers, diff_ids, chains) or fresh
                with self.store.lock():
                    if all(self.store.layers.exists(c) for c in chains):
                        fresh = self._register(image_id, top_digest, names, chains, config,
                                               big_data) or fresh
                        break
            else:
                raise StoreError(f"layers of {self.ref} were removed while it was being "
                                 "pulled; try again")
        except BaseException:
            self._rollback()
            raise
        return PullResult(image_id, top_digest, self.ref, fresh)

    def _rollback(self) -> None:
        rollback_layers(self.store, self.committed)

    def _local_config(self, image_id: str) -> bytes | None:
        """The config of an image we already have (verified when it was stored), so that a
        re-pull of an unchanged image fetches nothing but the manifest."""
        try:
            rec = self.store.images.get(image_id)
            return self.store.images.big_data(rec, rec.config_key)
        except PmdError:
            return None

    def _register(self, image_id: str, digest: str, names: list[str], chains: list[str],
                  config: dict[str, Any], big_data: dict[str, bytes]) -> bool:
        return register_image(self.store, image_id, digest, names, chains, config, big_data)

    def _fetch_layers(self, layers: list[dict[str, Any]], diff_ids: list[str],
                      chains: list[str]) -> bool:
        """Fetch missing layers in parallel and register them bottom-up. True if any fetched."""
        jobs: list[_LayerJob] = []
        for i, desc in enumerate(layers):
            short = _short(desc["digest"])
            if self.store.layers.exists(chains[i]):
                self.emit(Progress(short, "Already exists"))
                continue
            parent = chains[i - 1] if i else None
            jobs.append(_LayerJob(self, i, desc, diff_ids[i], chains[i], parent))
            self.emit(Progress(short, "Pulling fs layer"))
        if not jobs:
            return False
        for job in jobs:
            self.emit(Progress(job.short, "Waiting"))
        # Daemon threads, not a ThreadPoolExecutor: Ctrl-C must not wait for downloads.
        for job in jobs:
            threading.Thread(target=job.run, name=f"layer-{job.short}", daemon=True).start()
        try:
            for job in jobs:
                job.future.result()
                if job.record is not None and job.staging is not None:
                    self.emit(Progress(job.short, "Extracting"))
                    with self.store.lock():
                        if self.store.layers.commit(job.staging, job.record):
                            self.committed.append(job.chain_id)
                    job.staging = None
                    self.emit(Progress(job.short, "Pull complete"))
                else:
                    self.emit(Progress(job.short, "Already exists"))
                job.finish()
        except BaseException:
            self.cancel.set()
            self._abandon(jobs)
            raise
        return True

    def _abandon(self, jobs: list[_LayerJob]) -> None:
        """After a failure: let running jobs notice the cancel flag, then clean their staging.
        Jobs stuck in a network read are left to die with the process; their debris is removed
        by the next command's cleanup (their locks are released when the process exits)."""
        for job in jobs:
            try:
                job.future.exception(timeout=5)
            except BaseException:  # noqa: S112 - timed out or interrupted: leave it to cleanup
                continue
            job.finish()


def parse_config(data: bytes, digest: str) -> dict[str, Any]:
    try:
        config = json.loads(data)
        rootfs = config["rootfs"]
        if rootfs.get("type") != "layers" or not isinstance(rootfs.get("diff_ids"), list):
            raise ValueError("rootfs is not of type layers")
        return config
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise UnsupportedMedia(f"invalid image config {digest}: {e}") from None


def rollback_layers(store: Store, committed: list[str]) -> None:
    """After a failed pull or load: drop the layers it registered (bottom first in
    `committed`) that no image uses, so that it leaves the store as it found it."""
    if not committed:
        return
    doomed = []
    with store.lock():
        unused: set[str] = set(store.images.unused_layers())
        for chain_id in reversed(committed):
            if chain_id in unused and store.layers.exists(chain_id):
                doomed.append(store.layers.retire(chain_id))
    for path in doomed:
        store.discard(path)


def register_image(store: Store, image_id: str, digest: str, names: list[str],
                   chains: list[str], config: dict[str, Any], big_data: dict[str, bytes]) -> bool:
    """Create or update the image record over its (registered) layers; True if it is new or
    a tag moved to it. Caller holds the store lock."""
    images = store.images
    top = chains[-1] if chains else None
    try:
        old = images.get(image_id)
    except PmdError:
        old = None
    if old is not None and old.layer == top:
        new_names = [n for n in names if n not in old.names]
        if new_names:
            images.set_names(old, old.names + new_names)
        # a tag that now points here from another image is news, like Docker's status
        return bool(new_names and any(":" in n.rsplit("/", 1)[-1] and "@" not in n
                                      for n in new_names))
    rec = ImageRecord(
        id=image_id, digest=digest, names=(old.names if old else []) + names,
        layer=top, created=str(config.get("created", "")),
    )
    rec.names = list(dict.fromkeys(rec.names))
    images.add(rec, big_data)
    return True


def pull(store: Store, config: Config, ref: Reference, platform: Platform | None = None,
         on_event: Callable[[Progress], None] | None = None) -> PullResult:
    """Pull `ref` into `store`. See Puller.pull for the errors raised."""
    return Puller(store, config, ref, platform, on_event).pull()


__all__ = ["Progress", "PullResult", "Puller", "RegistryError", "pull", "register_image",
           "rollback_layers"]
