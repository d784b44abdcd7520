"""Platform normalisation, parsing, host detection and manifest-list selection."""
from __future__ import annotations

import platform

import pytest

from pyminidocker.errors import NotFound, UsageError
from pyminidocker.image.platforms import (
    Platform,
    host_platform,
    parse_platform,
    select_manifest,
)


@pytest.mark.parametrize(
    "machine,arch,variant",
    [
        ("x86_64", "amd64", None),
        ("x86-64", "amd64", None),
        ("AMD64", "amd64", None),
        ("aarch64", "arm64", None),
        ("arm64", "arm64", None),
        ("armhf", "arm", "v7"),
        ("armv7l", "arm", "v7"),
        ("armv6l", "arm", "v6"),
        ("i386", "386", None),
        ("i686", "386", None),
        ("ppc64le", "ppc64le", None),
        ("s390x", "s390x", None),
        ("riscv64", "riscv64", None),
    ],
)
def test_host_platform(monkeypatch, machine, arch, variant):
    monkeypatch.setattr(platform, "machine", lambda: machine)
    monkeypatch.setattr(platform, "system", lambda: "Linux")
    assert host_platform() == Platform("linux", arch, variant)


@pytest.mark.parametrize(
    "s,want",
    [
        ("linux/amd64", Platform("linux", "amd64")),
        ("linux/arm64/v8", Platform("linux", "arm64")),
        ("linux/arm64", Platform("linux", "arm64")),
        ("linux/aarch64", Platform("linux", "arm64")),
        ("linux/arm", Platform("linux", "arm", "v7")),
        ("linux/arm/v6", Platform("linux", "arm", "v6")),
        ("linux/arm/7", Platform("linux", "arm", "v7")),
        ("linux/amd64/v1", Platform("linux", "amd64")),
        ("linux/amd64/v3", Platform("linux", "amd64", "v3")),
        ("Linux/X86_64", Platform("linux", "amd64")),
        ("arm64", Platform("linux", "arm64")),
        ("windows/amd64", Platform("windows", "amd64")),
    ],
)
def test_parse_platform(s, want):
    assert parse_platform(s) == want


def test_parse_os_only_uses_host_arch(monkeypatch):
    monkeypatch.setattr(platform, "machine", lambda: "aarch64")
    assert parse_platform("linux") == Platform("linux", "arm64")


@pytest.mark.parametrize("s", ["", "/", "linux/", "linux/amd64/v8/x", "lin ux/amd64", "foo/amd64"])
def test_parse_platform_invalid(s):
    with pytest.raises(UsageError):
        parse_platform(s)


def test_str_and_dict():
    p = Platform("linux", "arm", "v7")
    assert str(p) == "linux/arm/v7"
    assert p.to_dict() == {"os": "linux", "architecture": "arm", "variant": "v7"}
    assert Platform.from_dict({"os": "linux", "architecture": "arm64", "variant": "v8"}) == \
        Platform("linux", "arm64")


def _d(arch, variant=None, os="linux", digest=None, **extra):
    plat = {"os": os, "architecture": arch}
    if variant:
        plat["variant"] = variant
    d = {"mediaType": "application/vnd.oci.image.manifest.v1+json",
         "digest": digest or f"sha256:{arch}{variant or ''}", "size": 1, "platform": plat}
    d.update(extra)
    return d


INDEX = [
    _d("amd64"),
    _d("arm", "v5"),
    _d("arm", "v6"),
    _d("arm64", "v8"),
    _d("386"),
    _d("unknown", os="unknown", digest="sha256:att1"),
]


def _pick(manifests, s):
    return select_manifest(manifests, parse_platform(s))["digest"]


def test_exact_match():
    assert _pick(INDEX, "linux/amd64") == "sha256:amd64"
    assert _pick(INDEX, "linux/386") == "sha256:386"


def test_arm64_v8_equals_no_variant():
    assert _pick(INDEX, "linux/arm64") == "sha256:arm64v8"
    assert _pick([_d("arm64")], "linux/arm64/v8") == "sha256:arm64"


def test_arm_variant_fallbacks():
    # v7 is absent; v6 is the best a v7 CPU can take, ahead of v5 whatever the order.
    assert _pick(INDEX, "linux/arm/v7") == "sha256:armv6"
    assert _pick(list(reversed(INDEX)), "linux/arm/v7") == "sha256:armv6"
    assert _pick(INDEX + [_d("arm", "v7")], "linux/arm/v7") == "sha256:armv7"
    assert _pick(INDEX, "linux/arm/v5") == "sha256:armv5"
    # A v6 CPU cannot run v7 code.
    with pytest.raises(NotFound):
        _pick([_d("arm", "v7")], "linux/arm/v6")
    # An entry without a variant is arm/v7.
    assert _pick([_d("arm")], "linux/arm/v7") == "sha256:arm"


def test_amd64_microarchitecture_levels():
    idx = [_d("amd64", "v3"), _d("amd64"), _d("amd64", "v2")]
    assert _pick(idx, "linux/amd64/v3") == "sha256:amd64v3"
    assert _pick(idx[1:], "linux/amd64/v3") == "sha256:amd64v2"
    assert _pick([_d("amd64", "v1")], "linux/amd64/v3") == "sha256:amd64v1"
    # A baseline CPU cannot run v3 code.
    with pytest.raises(NotFound):
        _pick([_d("amd64", "v3")], "linux/amd64")


def test_os_must_match():
    with pytest.raises(NotFound):
        _pick([_d("amd64", os="windows")], "linux/amd64")


def test_attestations_skipped():
    att = _d("amd64", digest="sha256:att2",
             annotations={"vnd.docker.reference.type": "attestation-manifest"})
    real = _d("amd64", digest="sha256:real")
    assert _pick([att, real], "linux/amd64") == "sha256:real"
    with pytest.raises(NotFound):
        _pick([att, INDEX[-1]], "linux/amd64")


def test_not_found_message():
    with pytest.raises(NotFound) as ei:
        _pick([_d("amd64")], "linux/arm64/v8")
    assert str(ei.value) == "no matching manifest for linux/arm64 in the manifest list entries"
    assert isinstance(ei.value, LookupError)


def test_entries_without_platform_are_skipped():
    d = _d("amd64")
    del d["platform"]
    with pytest.raises(NotFound):
        _pick([d], "linux/amd64")
