"""The fixtures themselves, checked without the engine: if these fail, the bug is ours."""
from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request

import pytest

from tests.integration import images as I
from tests.integration.conftest import HOST_ARCH


def get(url: str, headers: dict | None = None):
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10)


def test_registry_serves_pushed_oci_image_byte_for_byte(registry, multi):
    digest, mt, body = I.registry_manifest(multi.ref)
    assert (digest, mt, body) == (multi.digest, I.OCI_MANIFEST, multi.image.manifest)
    layer = multi.image.layers[1]
    with get(f"{registry.url}/v2/{multi.repo}/blobs/{layer.digest}") as r:
        assert r.read() == layer.blob
    assert I.blob_path(registry.storage, layer.digest).read_bytes() == layer.blob


def test_index_keeps_both_platforms_and_the_attestation(oci_index):
    _, mt, body = I.registry_manifest(oci_index.ref)
    plats = [(m["platform"]["os"], m["platform"]["architecture"])
             for m in json.loads(body)["manifests"]]
    assert mt == I.OCI_INDEX
    assert plats == [("linux", "amd64"), ("linux", "arm64"), ("unknown", "unknown")]
    assert oci_index.platform("amd64").config_digest != oci_index.platform("arm64").config_digest
    assert oci_index.image.arch == HOST_ARCH


def test_docker_list_instances_keep_our_configs(docker_list):
    _, _, body = I.registry_manifest(docker_list.ref)
    for m in json.loads(body)["manifests"]:
        _, mt, man = I.registry_manifest(f"{docker_list.name}@{m['digest']}")
        assert mt == I.DOCKER_MANIFEST
        want = docker_list.platform(m["platform"]["architecture"])
        assert json.loads(man)["config"]["digest"] == want.config_digest
        assert [x["digest"] for x in json.loads(man)["layers"]] == [
            lay.digest for lay in want.layers]


def test_compressed_layers_keep_their_media_types(compressed):
    for how, p in compressed.items():
        man = json.loads(I.registry_manifest(p.ref)[2])
        assert man["layers"][0]["mediaType"] == I.OCI_LAYER[how]
        assert man["layers"][0]["digest"] == p.image.layers[0].digest


def test_chain_ids_follow_the_image_spec():
    a, b = "sha256:" + "a" * 64, "sha256:" + "b" * 64
    import hashlib
    assert I.chain_ids([a]) == [a]
    assert I.chain_ids([a, b])[1] == "sha256:" + hashlib.sha256(f"{a} {b}".encode()).hexdigest()


def test_basic_registry_requires_credentials(registry_basic, publish, base_layer):
    with pytest.raises(urllib.error.HTTPError) as e:
        get(f"{registry_basic.url}/v2/")
    assert e.value.code == 401
    p = publish(I.build_image([base_layer]), "private/basic", registry=registry_basic)
    assert I.registry_manifest(p.ref, creds=registry_basic.creds)[0] == p.digest


def test_token_registry_accepts_signed_tokens_and_refuses_anonymous(registry_token, publish,
                                                                     base_layer):
    p = publish(I.build_image([base_layer]), "private/token", registry=registry_token)
    assert I.registry_manifest(p.ref, creds=registry_token.creds)[0] == p.digest
    ts = registry_token.token_server
    with pytest.raises(urllib.error.HTTPError) as e:
        get(f"{ts.realm}?service={ts.service}&scope=repository:private/token:pull")
    assert e.value.code == 401
    with pytest.raises(urllib.error.HTTPError) as e:
        I.registry_manifest(p.ref, creds=f"{registry_token.user}:wrong")
    assert e.value.code == 401


def _blob_url(proxy, p):
    return f"http://{proxy.host}/v2/{p.repo}/blobs/{p.image.layers[0].digest}"


def test_proxy_cut_once_then_resume_with_range(registry, single, faulty_proxy):
    proxy = faulty_proxy(registry, "cut-once", cut_after=10000)
    layer = single.image.layers[0]
    with get(_blob_url(proxy, single)) as r, pytest.raises(http.client.IncompleteRead) as e:
        r.read()
    got = e.value.partial
    assert len(got) == 10000
    with get(_blob_url(proxy, single), {"Range": f"bytes={len(got)}-"}) as r:
        assert r.status == 206
        assert got + r.read() == layer.blob
    assert [h.faulted for h in proxy.blob_gets()] == [True, False]
    assert proxy.blob_gets()[1].range == "bytes=10000-"


def test_proxy_cut_always(registry, single, faulty_proxy):
    proxy = faulty_proxy(registry, "cut-always", cut_after=5000)
    for _ in range(2):
        with get(_blob_url(proxy, single)) as r, pytest.raises(http.client.IncompleteRead):
            r.read()


@pytest.mark.parametrize("mode,status,count", [("503x2", 503, 2), ("429", 429, 1)])
def test_proxy_error_modes(registry, single, faulty_proxy, mode, status, count):
    proxy = faulty_proxy(registry, mode)
    for _ in range(count):
        with pytest.raises(urllib.error.HTTPError) as e:
            get(f"http://{proxy.host}/v2/")
        assert e.value.code == status
    if mode == "429":
        assert e.value.headers["Retry-After"] == "1"
    with get(f"http://{proxy.host}/v2/{single.repo}/manifests/{single.tag}",
             {"Accept": I.MANIFEST_ACCEPT}) as r:
        assert r.read() == single.image.manifest
