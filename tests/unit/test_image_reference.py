"""Image references (pyminidocker.reference): a table of valid references and their normal
forms, and invalid ones."""
from __future__ import annotations

import pytest

from pyminidocker.errors import InvalidReference, PmdError
from pyminidocker.reference import Reference, parse_reference

D = "sha256:" + "a" * 64

# input, registry, repository, tag, digest, str(), familiar_name
VALID = [
    ("busybox", "docker.io", "library/busybox", "latest", None,
     "docker.io/library/busybox:latest", "busybox"),
    ("busybox:1.36", "docker.io", "library/busybox", "1.36", None,
     "docker.io/library/busybox:1.36", "busybox"),
    ("user/repo", "docker.io", "user/repo", "latest", None,
     "docker.io/user/repo:latest", "user/repo"),
    ("docker.io/busybox", "docker.io", "library/busybox", "latest", None,
     "docker.io/library/busybox:latest", "busybox"),
    ("index.docker.io/library/busybox", "docker.io", "library/busybox", "latest", None,
     "docker.io/library/busybox:latest", "busybox"),
    ("index.docker.io/user/repo:t", "docker.io", "user/repo", "t", None,
     "docker.io/user/repo:t", "user/repo"),
    ("docker.io/library/a/b", "docker.io", "library/a/b", "latest", None,
     "docker.io/library/a/b:latest", "library/a/b"),
    ("localhost/repo", "localhost", "repo", "latest", None,
     "localhost/repo:latest", "localhost/repo"),
    ("localhost:5000/repo:v1", "localhost:5000", "repo", "v1", None,
     "localhost:5000/repo:v1", "localhost:5000/repo"),
    ("127.0.0.1:5000/repo", "127.0.0.1:5000", "repo", "latest", None,
     "127.0.0.1:5000/repo:latest", "127.0.0.1:5000/repo"),
    ("quay.io/org/sub/img:3.1-rc_1", "quay.io", "org/sub/img", "3.1-rc_1", None,
     "quay.io/org/sub/img:3.1-rc_1", "quay.io/org/sub/img"),
    ("[::1]:5000/repo", "[::1]:5000", "repo", "latest", None,
     "[::1]:5000/repo:latest", "[::1]:5000/repo"),
    (f"busybox@{D}", "docker.io", "library/busybox", None, D,
     f"docker.io/library/busybox@{D}", "busybox"),
    (f"busybox:1@{D}", "docker.io", "library/busybox", "1", D,
     f"docker.io/library/busybox:1@{D}", "busybox"),
    (f"127.0.0.1:5000/a/b@{D}", "127.0.0.1:5000", "a/b", None, D,
     f"127.0.0.1:5000/a/b@{D}", "127.0.0.1:5000/a/b"),
    ("a__b-c---d/e.f_g:TAG", "docker.io", "a__b-c---d/e.f_g", "TAG", None,
     "docker.io/a__b-c---d/e.f_g:TAG", "a__b-c---d/e.f_g"),
    # A dot in the first component makes it a registry host.
    ("a.b/c", "a.b", "c", "latest", None, "a.b/c:latest", "a.b/c"),
    # An uppercase first component cannot be a Hub user, so it is a registry host.
    ("Myhost/repo", "Myhost", "repo", "latest", None, "Myhost/repo:latest", "Myhost/repo"),
    ("a" * 10 + ":" + "t" * 128, "docker.io", "library/" + "a" * 10, "t" * 128, None,
     "docker.io/library/" + "a" * 10 + ":" + "t" * 128, "a" * 10),
]


@pytest.mark.parametrize("s,registry,repo,tag,digest,full,familiar", VALID)
def test_valid(s, registry, repo, tag, digest, full, familiar):
    r = parse_reference(s)
    assert (r.registry, r.repository, r.tag, r.digest) == (registry, repo, tag, digest)
    assert str(r) == full
    assert r.familiar_name == familiar
    assert r.name == f"{registry}/{repo}"
    # The normal form parses back to the same reference.
    assert parse_reference(str(r)) == r


INVALID = [
    "",
    " busybox",
    "busy box",
    "Busybox",
    "user/Repo",
    "busybox:",
    "busybox:-tag",
    "busybox:" + "t" * 129,
    "busybox@sha256:abc",
    "busybox@sha256:" + "A" * 64,
    "busybox@md5:" + "a" * 32,
    "busybox@",
    "busybox@sha256:" + "a" * 65,
    "/busybox",
    "busybox/",
    "a//b",
    "a/-b",
    "a-/b",
    "a..b/c/",
    "host:port/repo",
    ":tag",
    "@" + D,
    "-host.io/repo",
    "a" * 64,
    "x.io/" + "a" * 255,
    "repo:tag:tag",
]


@pytest.mark.parametrize("s", INVALID)
def test_invalid(s):
    with pytest.raises(InvalidReference) as ei:
        parse_reference(s)
    assert str(ei.value).startswith("invalid reference format")
    assert "\n" not in str(ei.value)


def test_uppercase_message_names_the_repo():
    with pytest.raises(InvalidReference, match=r"repository name \(user/Repo\) must be lowercase"):
        parse_reference("user/Repo")


def test_error_hierarchy():
    with pytest.raises(ValueError):
        parse_reference("UPPER")
    assert issubclass(InvalidReference, PmdError)


def test_with_tag_and_digest():
    r = parse_reference("busybox")
    assert str(r.with_tag("1.0")) == "docker.io/library/busybox:1.0"
    rd = r.with_digest(D)
    assert str(rd) == f"docker.io/library/busybox:latest@{D}"
    assert rd.reference == D
    assert r.reference == "latest"
    assert r.familiar == "busybox:latest"
    with pytest.raises(InvalidReference):
        r.with_tag("bad tag")
    with pytest.raises(InvalidReference):
        r.with_digest("sha256:xyz")


def test_frozen():
    r = parse_reference("busybox")
    with pytest.raises(AttributeError):
        r.tag = "x"  # type: ignore[misc]
    assert isinstance(r, Reference)
    assert hash(r) == hash(parse_reference("docker.io/library/busybox:latest"))
