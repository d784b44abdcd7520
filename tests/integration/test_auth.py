"""Registries that need credentials: htpasswd Basic auth and token auth; login and logout."""
from __future__ import annotations

import base64
import json
import re

import pytest

from tests.integration import images as I
from tests.integration import storecheck as sc

AUTH_ERROR = r"auth|unauthori[sz]ed|denied|login|credential|password"


@pytest.fixture(scope="session")
def basic_image(publish, registry_basic, base_layer):
    return publish(I.build_image([base_layer]), "private/basic-img", "v1",
                   registry=registry_basic)


@pytest.fixture(scope="session")
def token_image(publish, registry_token, base_layer):
    return publish(I.build_image([base_layer]), "private/token-img", "v1",
                   registry=registry_token)


def docker_config(pmd) -> dict:
    p = pmd.docker_config / "config.json"
    return json.loads(p.read_text()) if p.exists() else {}


def assert_auth_failure(res, root) -> None:
    assert res.returncode != 0, res.stdout
    line = sc.one_line_error(res.stderr)
    assert re.search(AUTH_ERROR, line, re.IGNORECASE), line
    assert sc.image_ids(root) == set()


def test_basic_pull_without_credentials_fails(pmd, root, basic_image):
    assert_auth_failure(pmd("pull", basic_image.ref, check=False), root)


def test_basic_login_pull_logout(pmd, root, registry_basic, basic_image):
    host = registry_basic.host
    out = pmd("login", "-u", registry_basic.user, "-p", registry_basic.password, host).stdout
    assert "Login Succeeded" in out
    entry = docker_config(pmd)["auths"][host]
    assert base64.b64decode(entry["auth"]).decode() == registry_basic.creds
    pmd("pull", "-q", basic_image.ref)
    assert sc.image_ids(root) == {basic_image.image.id_hex}
    pmd("logout", host)
    assert host not in docker_config(pmd).get("auths", {})
    pmd("rmi", basic_image.ref)
    assert_auth_failure(pmd("pull", basic_image.ref, check=False), root)


def test_login_password_stdin(pmd, registry_basic):
    host = registry_basic.host
    pmd("login", "-u", registry_basic.user, "--password-stdin", host,
        input=registry_basic.password + "\n")
    entry = docker_config(pmd)["auths"][host]
    assert base64.b64decode(entry["auth"]).decode() == registry_basic.creds


def test_login_wrong_password_fails(pmd, root, registry_basic):
    res = pmd("login", "-u", registry_basic.user, "-p", "wrong", registry_basic.host,
              check=False)
    assert_auth_failure(res, root)
    assert registry_basic.host not in docker_config(pmd).get("auths", {})


def test_credentials_from_an_existing_docker_config(pmd, root, registry_basic, basic_image):
    """A config.json written by Docker (not by us) is read."""
    pmd.docker_config.mkdir(parents=True, exist_ok=True)
    auth = base64.b64encode(registry_basic.creds.encode()).decode()
    (pmd.docker_config / "config.json").write_text(
        json.dumps({"auths": {registry_basic.host: {"auth": auth}}}))
    pmd("pull", "-q", basic_image.ref)
    assert sc.image_ids(root) == {basic_image.image.id_hex}


def test_wrong_stored_password_fails_clearly(pmd, root, registry_basic, basic_image):
    pmd.docker_config.mkdir(parents=True, exist_ok=True)
    auth = base64.b64encode(f"{registry_basic.user}:wrong".encode()).decode()
    (pmd.docker_config / "config.json").write_text(
        json.dumps({"auths": {registry_basic.host: {"auth": auth}}}))
    assert_auth_failure(pmd("pull", basic_image.ref, check=False), root)


def test_token_anonymous_pull_denied(pmd, root, registry_token, token_image):
    assert_auth_failure(pmd("pull", token_image.ref, check=False), root)


def test_token_pull_with_credentials(pmd, root, registry_token, token_image):
    ts = registry_token.token_server
    pmd("login", "-u", registry_token.user, "-p", registry_token.password, registry_token.host)
    seen = len(ts.requests)
    pmd("pull", "-q", token_image.ref)
    assert sc.image_ids(root) == {token_image.image.id_hex}
    scopes = [s for user, ss in ts.requests[seen:] for s in ss if user == registry_token.user]
    assert f"repository:{token_image.repo}:pull" in scopes
