"""The Dockerfile instructions of `import -c` and `commit -c`, and the names an image archive
may use, as pure functions (image/changes.py, image/archive.py)."""
from __future__ import annotations

import pytest

from pyminidocker.errors import LayerError, UsageError
from pyminidocker.image.archive import _clean, _clean_link, _named_digest
from pyminidocker.image.changes import apply_changes, new_config


def changed(*changes: str, base: dict | None = None) -> dict:
    config = {"config": dict(base or {})}
    apply_changes(config, list(changes))
    return config["config"]


def test_cmd_and_entrypoint_in_exec_and_shell_form():
    assert changed('CMD ["echo", "hi"]') == {"Cmd": ["echo", "hi"]}
    assert changed("CMD echo $HOME") == {"Cmd": ["/bin/sh", "-c", "echo $HOME"]}
    assert changed('ENTRYPOINT ["/init"]', "cmd x") == {"Entrypoint": ["/init"],
                                                         "Cmd": ["/bin/sh", "-c", "x"]}


def test_env_label_expose_volume_workdir_user_stopsignal():
    c = changed("ENV A=1 B=two", "ENV C three words", "ENV A=again", base={"Env": ["A=0"]})
    assert c["Env"] == ["B=two", "C=three words", "A=again"]
    assert changed('LABEL a=1 "b=x y"')["Labels"] == {"a": "1", "b": "x y"}
    assert changed("EXPOSE 80 53/udp")["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}}
    assert changed('VOLUME ["/data"]', "VOLUME /a /b")["Volumes"] == {
        "/data": {}, "/a": {}, "/b": {}}
    assert changed("WORKDIR /srv", "USER 1000:1000", "STOPSIGNAL SIGINT") == {
        "WorkingDir": "/srv", "User": "1000:1000", "StopSignal": "SIGINT"}


@pytest.mark.parametrize("bad", ["FROB x", "RUN echo", "CMD", "ENV", "ENV =x", "WORKDIR",
                                 'LABEL "unterminated'])
def test_a_bad_change_is_one_clear_error_exiting_1(bad):
    with pytest.raises(UsageError) as e:
        changed(bad)
    assert e.value.exit_code == 1 and "\n" not in str(e.value)


def test_new_config_adds_a_layer_and_a_history_entry():
    base = {"config": {"Cmd": ["sh"]}, "rootfs": {"type": "layers", "diff_ids": ["sha256:a"]},
            "history": [{"created_by": "base"}], "container": "old", "comment": "old"}
    c = new_config(base, "sha256:b", "/bin/sh -c x", "msg", "me")
    assert c["rootfs"]["diff_ids"] == ["sha256:a", "sha256:b"]
    assert [h.get("created_by") for h in c["history"]] == ["base", "/bin/sh -c x"]
    assert c["comment"] == c["history"][-1]["comment"] == "msg" and c["author"] == "me"
    assert "container" not in c and base["rootfs"]["diff_ids"] == ["sha256:a"]  # a copy
    fresh = new_config(None, "sha256:c", "", "")
    assert fresh["rootfs"]["diff_ids"] == ["sha256:c"] and fresh["os"] == "linux"


def test_archive_member_names_never_leave_the_archive():
    assert _clean("./blobs//sha256/x") == "blobs/sha256/x"
    for bad in ("../x", "/etc/passwd", "a/../../x", "a/.."):
        with pytest.raises(LayerError):
            _clean(bad)
    assert _clean_link("a/b/../c", "a/l") == "a/c"
    with pytest.raises(LayerError):
        _clean_link("a/../../x", "a/l")


def test_names_that_claim_a_digest():
    h = "a" * 64
    assert _named_digest(f"blobs/sha256/{h}") == f"sha256:{h}"
    assert _named_digest(f"{h}.json") == f"sha256:{h}"
    assert _named_digest(f"{h}/layer.tar") is None
    assert _named_digest("blobs/sha256/short") is None
