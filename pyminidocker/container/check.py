"""`system check`: the store's records against each other and against the host, and the repair
of what is found.

    layers      each record readable (else rebuilt from an image that has the layer), its
                chain-id the arithmetic of its parent and diff-id, its parent present, its diff/
                there; --full reads every file of every layer (an I/O error, a lost block)
                and compares the tree with its digest recorded at extraction (tree_digest)
    images      each record readable, its config there and parsed, its top layer the chain-id of
                its config's diff-ids, every layer of the chain present
    containers  each config readable, its image there
    orphans     directories without a record (layers, images, containers), staging debris of
                dead owners, mounts and cgroups of containers that are not running, addresses
                held for containers that are gone (network/ipam.py) and their port rules

check() only reads. Each Problem found carries its repair: repair() runs them under the store
lock and says what each did. A repair removes or quarantines (a layer, image or container
that cannot be trusted is taken out; a pull or a new run makes it again); it never guesses data.
"""
from __future__ import annotations

import os

from pyminidocker import proc, record
from pyminidocker.container.cgroups import DEFAULT_PARENT, Cgroup, Layout, detect
from pyminidocker.errors import CorruptRecord, PmdError, suppress
from pyminidocker.record import write_json
from pyminidocker.store.layers import LayerRecord, chain_ids, tree_digest

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from pyminidocker.store import Store


class Problem:
    """One thing found wrong: a line for the user, and how to repair it (None: it needs a
    human). The repair returns what it did, in a line."""

    def __init__(self, what: str, repair: Callable[[], str] | None = None):
        self.what = what
        self.repair = repair

    def __repr__(self) -> str:
        return f"Problem({self.what!r})"


def check(store: Store, full: bool = False) -> list[Problem]:
    """Everything found wrong with the store (and its containers' host state). Reads only.
    Raises StoreError if the store cannot be read at all."""
    out: list[Problem] = []
    for part in (_layers(store, full), _images(store), _containers(store), _staging(store),
                 _mounts_and_cgroups(store), _addresses(store)):
        out += part
    return out


def repair(store: Store, problems: list[Problem]) -> list[tuple[Problem, str | None]]:
    """Repair what can be, under the store lock: (problem, what was done, or None if it was
    left: no repair, or the repair failed, with the reason appended to problem.what)."""
    done: list[tuple[Problem, str | None]] = []
    with store.lock():
        for p in problems:
            if p.repair is None:
                done.append((p, None))
                continue
            try:
                done.append((p, p.repair()))
            except (PmdError, OSError) as e:
                p.what += f" (repair failed: {e})"
                done.append((p, None))
    return done


# ---- layers ----------------------------------------------------------------------------------

def _layers(store: Store, full: bool) -> Iterable[Problem]:
    layers = store.layers
    for chain_id in layers.all_ids():
        short = chain_id[7:19]
        d = layers.path(chain_id)
        if not os.path.exists(os.path.join(d, "layer.json")):
            yield Problem(f"layer {short}: a directory without a record (an unfinished "
                          "registration)", _retire(store, d, f"removed layer directory {short}"))
            continue
        try:
            rec = layers.get(chain_id)
        except CorruptRecord as e:
            yield Problem(f"{e} and no image has it",
                          _retire(store, d, f"removed layer {short}"))
            continue
        if chain_id in layers.corrupt:
            yield Problem(layers.corrupt[chain_id], _rewrite_layer(store, rec))
        if rec.id != chain_id or _chain_of(rec.parent, rec.diff_id) != chain_id:
            yield Problem(f"layer {short}: its record does not match its chain-id (parent "
                          f"{rec.parent}, diff-id {rec.diff_id})",
                          _retire(store, d, f"removed layer {short}"))
            continue
        if rec.parent and not layers.exists(rec.parent):
            yield Problem(f"layer {short}: its parent {rec.parent[7:19]} is missing",
                          _retire(store, d, f"removed layer {short}"))
            continue
        diff = layers.diff_path(chain_id)
        if not os.path.isdir(diff):
            yield Problem(f"layer {short}: its contents (diff/) are missing",
                          _retire(store, d, f"removed layer {short}"))
        elif full:
            bad = _changed(diff, rec.tree_digest)
            if bad:
                yield Problem(f"layer {short}: {bad}",
                              _retire(store, d, f"removed layer {short}"))


def _chain_of(parent: str | None, diff_id: str) -> str:
    if not parent:
        return diff_id
    import hashlib

    return "sha256:" + hashlib.sha256(f"{parent} {diff_id}".encode()).hexdigest()


def _changed(top: str, recorded: str) -> str | None:
    """What is wrong with a layer's files, None if nothing: one that cannot be read (an I/O
    error, a lost block), or a tree that is no longer the one extracted from the verified tar
    (recorded: its tree_digest; a layer registered without one is only read)."""
    try:
        digest = tree_digest(top)
    except OSError as e:
        return f"cannot read {e.filename or 'a file'}: {e.strerror}"
    if recorded and digest != recorded:
        return (f"its files are not those extracted from its diff-id (tree digest {digest}, "
                f"recorded {recorded})")
    return None


def _rewrite_layer(store: Store, rec: LayerRecord) -> Callable[[], str]:
    def fix() -> str:
        from pyminidocker.record import asdict

        write_json(os.path.join(store.layers.path(rec.id), "layer.json"), asdict(rec))
        return f"rewrote the record of layer {rec.id[7:19]} from its image"
    return fix


# ---- images ----------------------------------------------------------------------------------

def _images(store: Store) -> Iterable[Problem]:
    images = store.images
    listed = images.list()
    for image_id, message in images.corrupt.items():
        yield Problem(message, _image_remover(store, image_id, corrupt=True))
    for d in _dirs_without(os.path.join(store.root, "images"), "images.json"):
        name = os.path.basename(d)
        yield Problem(f"image {name[:12]}: a directory without a record",
                      _retire(store, d, f"removed image directory {name[:12]}"))
    for rec in listed:
        short = rec.id[:12]
        try:
            diff_ids = [str(x) for x in images.config(rec)["rootfs"]["diff_ids"]]
        except (PmdError, OSError, LookupError, TypeError) as e:
            yield Problem(f"image {short}: its config cannot be read ({e})",
                          _image_remover(store, rec.id))
            continue
        chain = chain_ids(diff_ids)
        if (chain[-1] if chain else None) != rec.layer:
            yield Problem(f"image {short}: its top layer is not the one its config describes",
                          _image_remover(store, rec.id))
            continue
        missing = [c for c in chain if not store.layers.exists(c)]
        if missing:
            yield Problem(f"image {short}: {len(missing)} of its layers are missing "
                          f"({', '.join(m[7:19] for m in missing)})",
                          _image_remover(store, rec.id))


def _image_remover(store: Store, image_id: str, corrupt: bool = False) -> Callable[[], str]:
    def fix() -> str:
        users = store.containers.image_users()
        if image_id in users:
            raise PmdError(f"image {image_id[:12]} is used by a container: remove it first")
        if corrupt:
            dead = store.images.remove_corrupt(image_id)
        else:
            dead = store.retire(store.images.path(image_id))
        store.discard(dead)
        return f"removed image {image_id[:12]} (pull it again)"
    return fix


# ---- containers ------------------------------------------------------------------------------

def _containers(store: Store) -> Iterable[Problem]:
    containers = store.containers
    listed = containers.list()
    for cid, message in containers.corrupt.items():
        yield Problem(message, None if _running(store, cid) else
                      _retire(store, containers.path(cid), f"removed container {cid[:12]}"))
    for d in _dirs_without(containers.dir, "config.json"):
        name = os.path.basename(d)
        yield Problem(f"container {name[:12]}: a directory without a record",
                      None if _running(store, name) else
                      _retire(store, d, f"removed container directory {name[:12]}"))
    for rec in listed:
        if rec.image and not os.path.isdir(store.images.path(rec.image)):
            yield Problem(f"container {rec.id[:12]} ({rec.name}): its image {rec.image[:12]} "
                          "is missing; rm it, or pull the image again")


def _state(store: Store, cid: str) -> dict[str, object]:
    try:
        with open(os.path.join(store.containers.path(cid), "state.json"), "rb") as f:
            st = record.loads(f.read())
        return st if isinstance(st, dict) else {}
    except (OSError, ValueError):
        return {}


def _running(store: Store, cid: str) -> bool:
    """Whether a process of the container is alive, by its state's pids and start times."""
    st = _state(store, cid)
    return st.get("status") == "running" and (
        proc.alive(int(st.get("pid") or 0), str(st.get("pid_start") or ""))  # type: ignore
        or proc.alive(int(st.get("monitor_pid") or 0),  # type: ignore
                      str(st.get("monitor_start") or "")))


# ---- orphans ---------------------------------------------------------------------------------

def _staging(store: Store) -> Iterable[Problem]:
    from pyminidocker.store.files import FileLock

    try:
        entries = os.listdir(store.staging_dir)
    except FileNotFoundError:
        return
    for name in entries:
        tag = name.split(".", 1)[0]
        if tag.startswith("dead-") or tag == "locked":
            owner_gone = True  # renamed there under the store lock: nobody owns it any more
        else:
            lk = FileLock(os.path.join(store.locks_dir, f"{tag}.lock"))
            owner_gone = lk.acquire(blocking=False)
            lk.release()
        if owner_gone:
            path = os.path.join(store.staging_dir, name)
            yield Problem(f"staging: {name} is left from an interrupted operation",
                          _discard(store, path, f"removed staging/{name}"))


def _mounts_and_cgroups(store: Store) -> Iterable[Problem]:
    prefix = store.containers.dir + "/"
    with suppress(OSError):
        with open("/proc/self/mountinfo", "rb") as f:
            lines = f.read().decode(errors="replace").splitlines()
        for line in lines:
            target = line.split()[4].replace("\\040", " ")
            if not target.startswith(prefix):
                continue
            cid = target[len(prefix):].split("/", 1)[0]
            if not _running(store, cid):
                yield Problem(f"mount {target} of container {cid[:12]}, which is not running",
                              _unmount(target))
    known = set(store.containers.ids())
    for cid in _cgroups():
        if cid in known and not _running(store, cid):
            yield Problem(f"cgroup of container {cid[:12]}, which is not running",
                          _cgroup_remover(cid))
        # a cgroup of no container of this store may be another store's: system reset's


def _cgroups() -> dict[str, list[str]]:
    """container id -> its cgroup directories, for every container cgroup on the host."""
    out: dict[str, list[str]] = {}
    try:
        layout = detect()
    except (PmdError, OSError):
        return out
    tops = [layout.root] if layout.version == "v2" else sorted(set(layout.controllers.values()))
    for top in tops:
        d = os.path.join(top, DEFAULT_PARENT)
        with suppress(OSError):
            for e in os.scandir(d):
                if e.is_dir(follow_symlinks=False) and len(e.name) == 64:
                    out.setdefault(e.name, []).append(e.path)
    return out


def _addresses(store: Store) -> Iterable[Problem]:
    from pyminidocker.network import ipam
    from pyminidocker.store.networks import NetworkStore

    ns = NetworkStore(store)
    for net in ns.all():
        alloc, owners = ns.book(net.name)
        for addr, cid in sorted(alloc.items()):
            if not ipam.holder_alive(store.root, cid, owners.get(addr, "")):
                yield Problem(f"network {net.name}: {addr} is held for container {cid[:12]}, "
                              "which is gone or not running", _release_stale(store))
    for message in ns.corrupt.values():
        # a network's: network rm -f, the user decides; an IPAM record's: rewritten whole by
        # the next allocation
        yield Problem(message, None)


def _dirs_without(top: str, record: str) -> list[str]:
    """The record directories (64 hex names) under top that have no `record` file."""
    try:
        entries = list(os.scandir(top))
    except FileNotFoundError:
        return []
    return [e.path for e in entries if len(e.name) == 64 and e.is_dir(follow_symlinks=False)
            and not os.path.lexists(os.path.join(e.path, record))]


# ---- repairs ---------------------------------------------------------------------------------

def _retire(store: Store, path: str, done: str) -> Callable[[], str]:
    def fix() -> str:
        with suppress(FileNotFoundError):
            store.discard(store.retire(path))
        return done
    return fix


def _discard(store: Store, path: str, done: str) -> Callable[[], str]:
    def fix() -> str:
        store.discard(path)
        return done
    return fix


def _unmount(target: str) -> Callable[[], str]:
    def fix() -> str:
        from pyminidocker import native as shim

        shim.umount(target, shim.MNT_DETACH)
        return f"unmounted {target}"
    return fix


def _cgroup_remover(cid: str) -> Callable[[], str]:
    def fix() -> str:
        Cgroup(cid, blkio=True).remove()  # blkio: if it has one (--device-read-bps...)
        return f"removed the cgroup of {cid[:12]}"
    return fix


def _release_stale(store: Store) -> Callable[[], str]:
    def fix() -> str:
        # the store lock is held by repair(): the reconciliation's own lock would wait on it
        from pyminidocker.network import ipam
        from pyminidocker.store.networks import NetworkStore

        ns = NetworkStore(store)
        freed = [a for net in ns.all() for a in ipam.reconcile_locked(ns, net)]
        return f"released {', '.join(freed)} and their port rules" if freed else \
            "released (already done)"
    return fix


# --- system reset's sweep ----------------------------------------------------------------------


def cleanup_stale(live_ids: set[str], parent: str = DEFAULT_PARENT,
                  root: str | os.PathLike[str] | None = None, layout: Layout | None = None,
                  remove_parent: bool = False) -> list[str]:
    """Remove the cgroups under parent whose id is not in live_ids (after a crash or reboot of
    the engine left them behind), killing any process still in them. Returns the removed ids.

    With remove_parent, the parent directories are removed too when nothing is left in them.
    Raises PmdError if a cgroup cannot be removed.
    """
    layout = layout or detect(root)
    parent = parent.strip("/")
    if layout.version == "v2":
        tops = [os.path.join(layout.root, parent)]
    else:
        tops = sorted({os.path.join(m, parent) for m in layout.controllers.values()})
    ids: set[str] = set()
    for top in tops:
        try:
            with os.scandir(top) as it:
                ids.update(e.name for e in it if e.is_dir(follow_symlinks=False))
        except FileNotFoundError:
            continue
        except OSError as e:
            raise PmdError(f"cannot list cgroups: {top}: {e.strerror}") from e
    stale = sorted(ids - set(live_ids))
    for cid in stale:
        Cgroup(cid, parent, layout=layout, blkio=True).remove()  # blkio: if it has one
    if remove_parent and not (ids & set(live_ids)):
        for top in tops:
            Cgroup.rmdir_tree(top)
    return stale
