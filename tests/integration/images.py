"""Fixture images built in Python from busybox-static, written as OCI image layouts.

Nothing here uses the engine: layers are tars made with `tarfile`, compressed with `gzip` or the
`zstd` CLI, described by manifests and configs written with `json`, and pushed to the test
registry by skopeo (`push`). Every builder returns the values a test expects to find after a
pull: digests, diff-ids, chain-ids and, per layer, the files the layer's `diff/` must hold.

Typical use (see tests/integration/conftest.py for the session fixtures):

    img = build_image([base_layer(), extra_layer()], arch="amd64")
    layout = write_layout(tmp / "layout", {"v1": img})
    push(layout, f"{registry.host}/multi:v1")
    img.chain_ids[-1]     # "sha256:..." of the top layer
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import stat
import subprocess
import tarfile
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

BUSYBOX = Path("/bin/busybox")
APPLETS = ("sh", "echo", "ls", "cat", "id", "true", "false", "sleep", "env", "stat", "touch")

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = {
    "none": "application/vnd.oci.image.layer.v1.tar",
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
}
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_ACCEPT = f"{OCI_INDEX}, {DOCKER_LIST}, {OCI_MANIFEST}, {DOCKER_MANIFEST}"

MTIME = 1700000000  # fixed, so that layers (and their digests) are reproducible


def sha256(data: bytes) -> str:
    """Return "sha256:<hex>" of data."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def hexof(digest: str) -> str:
    """The hex part of "sha256:<hex>" (or the argument if it has no prefix)."""
    return digest.split(":", 1)[1] if ":" in digest else digest


def chain_ids(diff_ids: list[str]) -> list[str]:
    """Chain-ids per OCI image-spec config.md: ChainID(L0) = DiffID(L0), then
    ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln)), over the "sha256:..." strings."""
    out: list[str] = []
    for d in diff_ids:
        out.append(d if not out else sha256(f"{out[-1]} {d}".encode()))
    return out


# --------------------------------------------------------------------------------------------
# Layers


@dataclass
class Entry:
    """One tar member and what the layer's diff/ must hold for it after extraction.

    kind: "file", "dir", "symlink", "hardlink", "whiteout" (a `.wh.NAME` member; expected as a
    0/0 character device NAME), "opaque" (a `.wh..wh..opq` member in directory `path`; expected
    as the xattr trusted.overlay.opaque=y on that directory).
    """

    path: str
    kind: str = "file"
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    data: bytes = b""
    target: str = ""  # symlink target, or the hardlink's source path inside the layer
    xattrs: dict[str, bytes] = field(default_factory=dict)  # e.g. security.capability


    def tarinfo(self) -> tuple[tarfile.TarInfo, bytes | None]:
        name = self.path
        if self.kind == "whiteout":
            d, b = os.path.split(self.path)
            name = os.path.join(d, ".wh." + b)
        elif self.kind == "opaque":
            name = os.path.join(self.path, ".wh..wh..opq")
        ti = tarfile.TarInfo(name)
        ti.mtime = MTIME
        ti.uid, ti.gid, ti.mode = self.uid, self.gid, self.mode
        ti.uname = ti.gname = ""
        # As GNU tar and Docker write them: binary values pass through surrogateescape (the
        # header then says hdrcharset=BINARY).
        ti.pax_headers = {f"SCHILY.xattr.{k}": v.decode("utf-8", "surrogateescape")
                          for k, v in self.xattrs.items()}
        payload = None
        if self.kind == "dir":
            ti.type = tarfile.DIRTYPE
        elif self.kind == "symlink":
            ti.type, ti.linkname, ti.mode = tarfile.SYMTYPE, self.target, 0o777
        elif self.kind == "hardlink":
            ti.type, ti.linkname = tarfile.LNKTYPE, self.target
        elif self.kind in ("whiteout", "opaque"):
            ti.type, ti.mode = tarfile.REGTYPE, 0o644
            payload = b""
        else:
            ti.type, ti.size = tarfile.REGTYPE, len(self.data)
            payload = self.data
        return ti, payload


@dataclass
class Layer:
    """A layer blob: `tar` (uncompressed), `blob` (as pushed), digests and the expected entries."""

    entries: list[Entry]
    compression: str
    tar: bytes
    blob: bytes
    digest: str  # of the compressed blob, the manifest's descriptor digest
    diff_id: str  # of the uncompressed tar
    media_type: str

    @property
    def size(self) -> int:
        return len(self.blob)

    @property
    def short(self) -> str:
        """The 12-hex id Docker prints in "<id>: Pull complete" lines."""
        return hexof(self.digest)[:12]

    def descriptor(self, docker: bool = False) -> dict:
        mt = self.media_type
        if docker:
            mt = "application/vnd.docker.image.rootfs.diff.tar" + (
                ".gzip" if self.compression == "gzip" else ""
            )
        return {"mediaType": mt, "digest": self.digest, "size": self.size}


def compress(data: bytes, how: str) -> bytes:
    """Compress a tar: "none", "gzip" (mtime 0, reproducible) or "zstd" (the zstd CLI)."""
    if how == "none":
        return data
    if how == "gzip":
        return gzip.compress(data, compresslevel=6, mtime=0)
    if how == "zstd":
        return subprocess.run(
            ["zstd", "-q", "-c", "-3"], input=data, capture_output=True, check=True
        ).stdout
    raise ValueError(how)


def make_layer(entries: list[Entry], compression: str = "gzip") -> Layer:
    """Write entries, in order, into a PAX tar and compress it."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for e in entries:
            ti, payload = e.tarinfo()
            tf.addfile(ti, io.BytesIO(payload) if payload is not None else None)
    tar = buf.getvalue()
    blob = compress(tar, compression)
    return Layer(entries, compression, tar, blob, sha256(blob), sha256(tar), OCI_LAYER[compression])


def passwd_entries() -> list[Entry]:
    return [
        Entry("etc/passwd", data=b"root:x:0:0:root:/root:/bin/sh\n"
              b"user:x:1000:1000:user:/home/user:/bin/sh\n"
              b"nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"),
        Entry("etc/group", data=b"root:x:0:\nuser:x:1000:\nnogroup:x:65534:\n"),
    ]


def base_entries(extra: bytes = b"") -> list[Entry]:
    """A minimal rootfs: bin/busybox, applet symlinks, etc/passwd and group, a sticky tmp.

    `extra` is written to etc/base-id, so that two bases can differ (distinct diff-ids).
    """
    ents = [
        Entry("bin", "dir", 0o755),
        Entry("bin/busybox", mode=0o755, data=BUSYBOX.read_bytes()),
    ]
    ents += [Entry(f"bin/{a}", "symlink", target="busybox") for a in APPLETS]
    ents += [
        Entry("etc", "dir", 0o755),
        *passwd_entries(),
        Entry("etc/motd", data=b"welcome from the base layer\n"),
        Entry("etc/conf.d", "dir", 0o755),
        Entry("etc/conf.d/a.conf", data=b"a=1\n"),
        Entry("etc/conf.d/b.conf", data=b"b=1\n"),
        Entry("root", "dir", 0o700),
        Entry("tmp", "dir", 0o1777),
    ]
    if extra:
        ents.append(Entry("etc/base-id", data=extra))
    return ents


def full_busybox_entries() -> list[Entry]:
    """base_entries() with every applet busybox has linked in bin/ (for running containers)."""
    applets = subprocess.run([str(BUSYBOX), "--list"], capture_output=True, text=True,
                             check=True).stdout.split()
    entries = base_entries()
    have = {e.path for e in entries}
    entries += [Entry(f"bin/{a}", "symlink", target="busybox") for a in applets
                if f"bin/{a}" not in have and a != "busybox"]
    entries += [Entry("home", "dir", 0o755),
                Entry("home/user", "dir", 0o755, uid=1000, gid=1000)]
    return entries


def busybox_image() -> Image:
    """A one-layer image of every busybox applet, with an Env, WorkingDir and Cmd to inherit."""
    return build_image([make_layer(full_busybox_entries())],
                       config_extra={"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:"
                                             "/usr/bin:/sbin:/bin", "FROM_IMAGE=yes",
                                             "OVERRIDE=image"],
                                     "WorkingDir": "/", "Cmd": ["sh", "-c", "echo default"],
                                     "ExposedPorts": {"7000/tcp": {}}})


def multi_entries() -> list[list[Entry]]:
    """Entries of the `multi` image's layers 2 and 3 (layer 1 is base_entries()).

    Layer 2 deletes etc/motd (whiteout), replaces etc/conf.d's contents (opaque marker placed
    after the new file, since the issue says "whatever its position in the tar"), and adds a
    hardlink, a symlink, a setuid file and a home owned by uid 1000. Layer 3 adds one file.
    """
    l2 = [
        Entry("etc", "dir", 0o755),
        Entry("etc/motd", "whiteout"),
        Entry("etc/conf.d", "dir", 0o755),
        Entry("etc/conf.d/new.conf", data=b"new=2\n"),
        Entry("etc/conf.d", "opaque"),
        Entry("usr", "dir", 0o755),
        Entry("usr/share", "dir", 0o755),
        Entry("usr/share/data", "dir", 0o755),
        Entry("usr/share/data/orig", data=b"shared inode\n"),
        Entry("usr/share/data/link", "hardlink", target="usr/share/data/orig"),
        Entry("usr/bin", "dir", 0o755),
        Entry("usr/bin/tool", "symlink", target="/bin/busybox"),
        Entry("usr/bin/suid", mode=0o4755, data=b"#!/bin/sh\necho suid\n"),
        Entry("home", "dir", 0o755),
        Entry("home/user", "dir", 0o750, uid=1000, gid=1000),
        Entry("home/user/file", mode=0o640, uid=1000, gid=1000, data=b"owned by 1000\n"),
    ]
    l3 = [
        Entry("etc", "dir", 0o755),
        Entry("etc/layer3", data=b"third layer\n"),
    ]
    return [l2, l3]


# --------------------------------------------------------------------------------------------
# Images


@dataclass
class Image:
    """One platform image (config + manifest) and what a pull of it must produce."""

    layers: list[Layer]
    config: bytes
    manifest: bytes
    arch: str
    os: str = "linux"
    variant: str = ""
    docker: bool = False  # Docker v2s2 media types instead of OCI
    pushed_as: list[str] = field(default_factory=list)  # refs pushed by push()

    @property
    def config_digest(self) -> str:
        return sha256(self.config)

    @property
    def image_id(self) -> str:
        """"sha256:<config hex>", what `inspect` reports as Id and `pull -q` prints."""
        return self.config_digest

    @property
    def id_hex(self) -> str:
        return hexof(self.config_digest)

    @property
    def manifest_digest(self) -> str:
        return sha256(self.manifest)

    @property
    def diff_ids(self) -> list[str]:
        return [lay.diff_id for lay in self.layers]

    @property
    def chain_ids(self) -> list[str]:
        return chain_ids(self.diff_ids)

    @property
    def top_layer(self) -> str:
        return self.chain_ids[-1]

    @property
    def media_type(self) -> str:
        return DOCKER_MANIFEST if self.docker else OCI_MANIFEST

    def descriptor(self) -> dict:
        d: dict = {"mediaType": self.media_type, "digest": self.manifest_digest,
                   "size": len(self.manifest)}
        plat = {"architecture": self.arch, "os": self.os}
        if self.variant:
            plat["variant"] = self.variant
        d["platform"] = plat
        return d

    def blobs(self) -> dict[str, bytes]:
        out = {self.config_digest: self.config, self.manifest_digest: self.manifest}
        out.update({lay.digest: lay.blob for lay in self.layers})
        return out


def build_image(layers: list[Layer], arch: str = "amd64", os_: str = "linux",
                variant: str = "", docker: bool = False, cmd: list[str] | None = None,
                labels: dict[str, str] | None = None,
                config_extra: dict | None = None) -> Image:
    """Write the config (with rootfs.diff_ids) and the manifest for these layers.
    config_extra adds or replaces keys of the config's "config" (Env, Entrypoint, User, ...)."""
    cfg: dict = {
        "created": "2023-11-14T22:13:20Z",
        "architecture": arch,
        "os": os_,
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": cmd or ["/bin/sh"],
            "Labels": labels or {},
            **(config_extra or {}),
        },
        "rootfs": {"type": "layers", "diff_ids": [lay.diff_id for lay in layers]},
        "history": [{"created": "2023-11-14T22:13:20Z", "created_by": "pyminidocker tests"}
                    for _ in layers],
    }
    if variant:
        cfg["variant"] = variant
    config = json.dumps(cfg, sort_keys=True).encode()
    if docker:
        man = {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                       "digest": sha256(config), "size": len(config)},
            "layers": [lay.descriptor(docker=True) for lay in layers],
        }
    else:
        man = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": sha256(config), "size": len(config)},
            "layers": [lay.descriptor() for lay in layers],
        }
    manifest = json.dumps(man, indent=2).encode()
    return Image(layers, config, manifest, arch, os_, variant, docker)


@dataclass
class Index:
    """An OCI index or Docker manifest list over platform images (plus maybe an attestation)."""

    images: list[Image]
    data: bytes
    docker: bool = False
    extra_blobs: dict[str, bytes] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        return sha256(self.data)

    @property
    def media_type(self) -> str:
        return DOCKER_LIST if self.docker else OCI_INDEX

    def platform(self, arch: str) -> Image:
        return next(i for i in self.images if i.arch == arch)

    def blobs(self) -> dict[str, bytes]:
        out = {self.digest: self.data, **self.extra_blobs}
        for i in self.images:
            out.update(i.blobs())
        return out


def attestation_manifest(subject: Image) -> tuple[dict, dict[str, bytes]]:
    """A BuildKit-style attestation manifest (platform unknown/unknown) for `subject`."""
    statement = json.dumps({"_type": "https://in-toto.io/Statement/v0.1",
                            "predicateType": "https://spdx.dev/Document",
                            "subject": [], "predicate": {}}).encode()
    config = json.dumps({"architecture": "unknown", "os": "unknown",
                         "rootfs": {"type": "layers", "diff_ids": [sha256(statement)]}}).encode()
    man = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": sha256(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.in-toto+json", "digest": sha256(statement),
                    "size": len(statement),
                    "annotations": {"in-toto.io/predicate-type": "https://spdx.dev/Document"}}],
    }).encode()
    desc = {"mediaType": OCI_MANIFEST, "digest": sha256(man), "size": len(man),
            "platform": {"architecture": "unknown", "os": "unknown"},
            "annotations": {"vnd.docker.reference.digest": subject.manifest_digest,
                            "vnd.docker.reference.type": "attestation-manifest"}}
    return desc, {sha256(man): man, sha256(config): config, sha256(statement): statement}


def build_index(images: list[Image], docker: bool = False, attestation: bool = False) -> Index:
    """An OCI index (or, docker=True, a Docker manifest list) over images."""
    descs = [i.descriptor() for i in images]
    extra: dict[str, bytes] = {}
    if attestation:
        d, extra = attestation_manifest(images[0])
        descs.append(d)
    idx = {"schemaVersion": 2, "mediaType": DOCKER_LIST if docker else OCI_INDEX,
           "manifests": descs}
    return Index(images, json.dumps(idx, indent=2).encode(), docker, extra)


def write_layout(path: Path, tags: dict[str, Image | Index]) -> Path:
    """Write an OCI image layout at path with one index.json entry per tag. Returns path."""
    blobdir = path / "blobs" / "sha256"
    blobdir.mkdir(parents=True, exist_ok=True)
    (path / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    entries = []
    for tag, obj in tags.items():
        for dg, data in obj.blobs().items():
            (blobdir / hexof(dg)).write_bytes(data)
        top = obj.data if isinstance(obj, Index) else obj.manifest
        entries.append({"mediaType": obj.media_type, "digest": sha256(top), "size": len(top),
                        "annotations": {"org.opencontainers.image.ref.name": tag}})
    (path / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": entries}))
    return path


# --------------------------------------------------------------------------------------------
# Pushing and reading back (skopeo and plain HTTP: never the engine's code)


def push(layout: Path, ref: str, fmt: str = "oci", creds: str | None = None,
         all: bool = False, src_tag: str | None = None) -> str:
    """Copy oci:LAYOUT:TAG to docker://REF with skopeo; return the digest the registry reports.

    TAG is src_tag, by default REF's tag (write_layout's keys are the tags).

    fmt="oci" keeps the layout's bytes (--preserve-digests, so the digests we computed are the
    pushed ones); fmt="v2s2" asks skopeo to convert to Docker schema2 (the digest changes; use
    the returned one). `all` copies every instance of an index. creds: "user:password".
    Raises subprocess.CalledProcessError with skopeo's stderr on failure.
    """
    cmd = ["skopeo", "--insecure-policy", "copy", "-q", "--dest-tls-verify=false"]
    if fmt == "v2s2":
        cmd += ["--format", "v2s2"]
    else:
        cmd += ["--preserve-digests"]
    if all:
        cmd += ["--all"]
    if creds:
        cmd += ["--dest-creds", creds]
    cmd += [f"oci:{layout}:{src_tag or split_ref(ref)[2]}", f"docker://{ref}"]
    res = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=120)
    if res.returncode != 0:
        raise subprocess.CalledProcessError(res.returncode, cmd, res.stdout, res.stderr)
    return registry_manifest(ref, creds=creds)[0]


def split_ref(ref: str) -> tuple[str, str, str]:
    """"host:port/repo:tag" or "host:port/repo@sha256:..." -> (host, repo, tag-or-digest)."""
    host, rest = ref.split("/", 1)
    if "@" in rest:
        repo, tag = rest.split("@", 1)
    else:
        repo, tag = rest.rsplit(":", 1)
    return host, repo, tag


def registry_manifest(ref: str, creds: str | None = None) -> tuple[str, str, bytes]:
    """GET the manifest of ref from the registry: (digest, media type, body).

    Handles Basic auth directly and Bearer by following the challenge; used to learn what
    skopeo actually pushed.
    """
    host, repo, tag = split_ref(ref)
    url = f"http://{host}/v2/{repo}/manifests/{tag}"
    req = urllib.request.Request(url, headers={"Accept": MANIFEST_ACCEPT})
    resp = _open_authorized(req, creds, f"repository:{repo}:pull")
    with resp:
        body = resp.read()
        return (resp.headers.get("Docker-Content-Digest") or sha256(body),
                resp.headers.get("Content-Type", ""), body)


def _open_authorized(req: urllib.request.Request, creds: str | None, scope: str):
    import base64
    import urllib.error
    import urllib.parse

    try:
        return urllib.request.urlopen(req, timeout=30)
    except urllib.error.HTTPError as e:
        if e.code != 401 or not creds:
            raise
        challenge = e.headers.get("WWW-Authenticate", "")
    basic = "Basic " + base64.b64encode(creds.encode()).decode()
    if challenge.lower().startswith("basic"):
        req.add_header("Authorization", basic)
        return urllib.request.urlopen(req, timeout=30)
    params = dict(p.split("=", 1) for p in challenge[len("Bearer "):].split(","))
    params = {k: v.strip('"') for k, v in params.items()}
    q = urllib.parse.urlencode({"service": params.get("service", ""), "scope": scope})
    treq = urllib.request.Request(f"{params['realm']}?{q}", headers={"Authorization": basic})
    with urllib.request.urlopen(treq, timeout=30) as t:
        token = json.load(t)["token"]
    req.add_header("Authorization", f"Bearer {token}")
    return urllib.request.urlopen(req, timeout=30)


def blob_path(storage: Path, digest: str) -> Path:
    """Where distribution's filesystem driver keeps a blob's bytes."""
    h = hexof(digest)
    return storage / "docker/registry/v2/blobs/sha256" / h[:2] / h / "data"


def corrupt_blob(storage: Path, digest: str, offset: int = 100) -> None:
    """Flip bytes of a blob in the registry's storage (same size, wrong content)."""
    p = blob_path(storage, digest)
    with open(p, "r+b") as f:
        f.seek(offset)
        old = f.read(16)
        f.seek(offset)
        f.write(bytes(b ^ 0xFF for b in old))


# --------------------------------------------------------------------------------------------
# Checking a layer's diff/ against its entries


def expected_tree(entries: list[Entry]) -> dict[str, Entry]:
    """Path -> the Entry whose effect must be visible in diff/ (last one wins)."""
    out: dict[str, Entry] = {}
    for e in entries:
        if e.kind == "opaque":
            out[e.path] = Entry(e.path, "dir", out.get(e.path, Entry(e.path, "dir", 0o755)).mode)
            out[e.path].target = "opaque"
        else:
            out[e.path] = e
    return out


def check_diff(diff: Path, entries: list[Entry]) -> list[str]:
    """Compare diff/ with what the entries must produce; return a list of problems (empty: ok).

    Checks type, permission bits (incl. setuid/setgid/sticky), owner, content, symlink
    target, hardlink inode sharing, whiteout devices (char 0/0) and the opaque xattr, and
    that no `.wh.` file is left in diff/.
    """
    problems: list[str] = []
    tree = expected_tree(entries)
    for rel, e in tree.items():
        p = diff / rel
        try:
            st = os.lstat(p)
        except FileNotFoundError:
            problems.append(f"{rel}: missing")
            continue
        if e.kind == "whiteout":
            if not stat.S_ISCHR(st.st_mode) or st.st_rdev != 0:
                problems.append(f"{rel}: whiteout is not a 0/0 char device ({oct(st.st_mode)})")
            continue
        if e.kind == "symlink":
            if not stat.S_ISLNK(st.st_mode):
                problems.append(f"{rel}: not a symlink")
            elif os.readlink(p) != e.target:
                problems.append(f"{rel}: symlink -> {os.readlink(p)!r}, want {e.target!r}")
            continue
        if e.kind == "dir":
            if not stat.S_ISDIR(st.st_mode):
                problems.append(f"{rel}: not a directory")
                continue
            if e.target == "opaque":
                try:
                    val = os.getxattr(p, "trusted.overlay.opaque", follow_symlinks=False)
                except OSError:
                    val = b""
                if val != b"y":
                    problems.append(f"{rel}: no trusted.overlay.opaque=y")
        if e.kind == "hardlink":
            src = os.lstat(diff / e.target)
            if (src.st_ino, src.st_dev) != (st.st_ino, st.st_dev):
                problems.append(f"{rel}: not a hardlink of {e.target}")
            continue
        if e.kind == "file":
            if not stat.S_ISREG(st.st_mode):
                problems.append(f"{rel}: not a regular file")
                continue
            if p.read_bytes() != e.data:
                problems.append(f"{rel}: content differs")
        if stat.S_IMODE(st.st_mode) != e.mode:
            problems.append(f"{rel}: mode {oct(stat.S_IMODE(st.st_mode))}, want {oct(e.mode)}")
        if (st.st_uid, st.st_gid) != (e.uid, e.gid):
            problems.append(f"{rel}: owner {st.st_uid}:{st.st_gid}, want {e.uid}:{e.gid}")
    for dirpath, dirnames, filenames in os.walk(diff):
        for n in dirnames + filenames:
            if n.startswith(".wh."):
                problems.append(f"{os.path.relpath(os.path.join(dirpath, n), diff)}: "
                                "whiteout file left as is")
    return problems

