"""The DNS module's pure parts: the host's resolvers read from a resolv.conf, the query the
engine sends to check its server, and the engine config's "resolv-conf"."""
from __future__ import annotations

import json

import pytest

from pyminidocker.config import Config
from pyminidocker.errors import UsageError
from pyminidocker.network import dns


def test_upstreams_are_the_nameserver_lines(tmp_path):
    conf = tmp_path / "resolv.conf"
    conf.write_text("# a comment\nsearch example.test\nnameserver 10.9.8.7\n"
                    "options ndots:2\nnameserver fe80::1%eth0\nnameserver\n")
    assert dns.upstreams(str(conf)) == ["10.9.8.7", "fe80::1"]
    assert dns.upstreams(str(tmp_path / "missing")) == []


def test_the_query_is_an_a_question_for_the_name():
    q = dns._query("web.dnsnet")
    assert q[4:6] == b"\x00\x01" and q[2:4] == b"\x01\x00"  # one question, recursion desired
    assert q[12:] == b"\x03web\x06dnsnet\x00\x00\x01\x00\x01"


def test_resolv_conf_in_the_engine_config(tmp_path):
    assert Config.load(tmp_path).resolv_conf == "/etc/resolv.conf"
    (tmp_path / "config.json").write_text(json.dumps({"resolv-conf": "/srv/resolv.conf"}))
    assert Config.load(tmp_path).resolv_conf == "/srv/resolv.conf"
    (tmp_path / "config.json").write_text(json.dumps({"resolv-conf": "relative.conf"}))
    with pytest.raises(UsageError, match="resolv-conf"):
        Config.load(tmp_path)
