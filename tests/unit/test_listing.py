"""ps/images/network ls rows as Docker's --format reads them (cli/columns) and Docker's
--filter semantics (cli/filters), over real records."""
from __future__ import annotations

import pytest

from pyminidocker.cli.columns import (
    IMAGES_HEADER,
    NETWORKS_HEADER,
    PS_HEADER,
    PS_TABLE,
    ContainerContext,
    ImageContext,
    NetworkContext,
    display_ports,
    docker_command,
    ellipsis,
)
from pyminidocker.cli.gotemplate import format_items
from pyminidocker.cli.output import parse_time
from pyminidocker.engine import filters
from pyminidocker.errors import InvalidFilter, NotFound, PmdError, UsageError
from pyminidocker.store.containers import ContainerRecord, State
from pyminidocker.store.networks import Network
from pyminidocker.store.volumes import Volume

NOW = parse_time("2026-12-04T06:00:00Z")


def ctr(name: str, status: str = "running", created: str = "2026-12-04T05:58:00Z", **kw):
    host = {"network": "bridge", "ports": kw.pop("ports", []), "binds": kw.pop("binds", [])}
    state = State(status=status, started_at="2026-12-04T05:58:30Z",
                  finished_at="2026-12-04T05:59:00Z" if status == "exited" else "",
                  exit_code=kw.pop("exit_code", 0), ports=kw.pop("mappings", []))
    return ContainerRecord(
        id=kw.pop("cid", (name.encode().hex() * 64)[:64]), name=name, image="ab" * 32,
        image_name=kw.pop("image", "nginx:1.25"), created=created,
        argv=kw.pop("argv", ["nginx", "-g", "daemon off;"]), env=[], cwd="/", user="",
        hostname="h", host=host, labels=kw.pop("labels", {}), state=state)


WEB = ctr("web", ports=["8080:80"], mappings=["80/tcp -> 0.0.0.0:8080"],
          labels={"app": "shop", "tier": "front"}, binds=["/srv/www:/usr/share/nginx/html"])
DB = ctr("db", status="exited", exit_code=3, created="2026-12-04T05:00:00Z",
         image="postgres:16", argv=["docker-entrypoint.sh", "postgres"], labels={"app": "shop"})
NEW = ctr("new", status="created", created="2026-12-04T05:59:59Z", image="busybox",
          argv=["sh"])


# ---- columns --------------------------------------------------------------------------------

def test_ps_fields_as_docker_prints_them():
    c = ContainerContext(WEB, now=NOW)
    assert c.ID == WEB.id[:12]
    assert c.Names == "web" and c.Image == "nginx:1.25"
    # Docker quotes an arg with a space in '...', cuts at 20 with "…" and quotes with Go's %q:
    # the ellipsis stays a character, not "\u2026" (issue 10, point 7)
    assert c.Command == '"nginx -g \'daemon of…"'
    assert ContainerContext(WEB, now=NOW, trunc=False).Command == '"nginx -g \'daemon off;\'"'
    assert c.RunningFor == "2 minutes ago"
    assert c.Status == "Up About a minute"
    assert c.Ports == "0.0.0.0:8080->80/tcp"
    assert c.Labels == "app=shop,tier=front" and c.Label("tier") == "front" and c.Label("x") == ""
    assert c.Networks == "bridge" and c.Mounts == "/srv/www" and c.State == "running"
    d = ContainerContext(DB, now=NOW)
    assert d.Status == "Exited (3) About a minute ago" and d.Ports == ""
    assert ContainerContext(NEW, now=NOW).Status == "Created"


def test_ps_table_and_json_like_docker():
    out = format_items(PS_TABLE, [ContainerContext(WEB, now=NOW)], PS_HEADER)
    lines = out.splitlines()
    assert lines[0].split() == ["CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED", "STATUS",
                                "PORTS", "NAMES"]
    assert lines[0].startswith("CONTAINER ID   IMAGE        COMMAND")
    assert lines[1].startswith(WEB.id[:12] + "   nginx:1.25   \"nginx -g 'daemon of…\"   ")
    assert lines[1].endswith("0.0.0.0:8080->80/tcp   web")
    js = format_items("{{json .}}", [ContainerContext(DB, now=NOW)])
    assert js.startswith('{"Command":"\\"docker-entrypoint.s…\\"","CreatedAt":"2026-12-04 ')
    assert '"Names":"db","Networks":"bridge","Ports":"","RunningFor":"About an hour ago"' in js
    assert format_items('{{.Names}}: {{.Label "app"}}', [ContainerContext(WEB)]) == "web: shop\n"


def test_display_ports_folds_ranges_and_lists_exposed_ports():
    assert display_ports(["80/tcp -> 0.0.0.0:8080", "81/tcp -> 0.0.0.0:8081"]) == \
        "0.0.0.0:8080-8081->80-81/tcp"
    assert display_ports(["53/udp -> 127.0.0.1:5353"], ["80/tcp", "81/tcp", "443/tcp"]) == \
        "127.0.0.1:5353->53/udp, 80-81/tcp, 443/tcp"


def test_docker_command_and_ellipsis():
    assert docker_command(["sh", "-c", "echo hi"]) == "sh -c 'echo hi'"
    assert docker_command(["top"]) == "top"
    assert ellipsis("abcdef", 4) == "abc…" and ellipsis("abc", 4) == "abc"


def test_images_and_networks_fields():
    i = ImageContext("cd" * 32, "localhost:5000/app", "v1", "sha256:" + "ef" * 32,
                     "2026-11-20T06:00:00Z", 187_000_000, now=NOW)
    assert (i.ID, i.Repository, i.Tag, i.Size, i.CreatedSince) == \
        ("cd" * 6, "localhost:5000/app", "v1", "187MB", "2 weeks ago")
    assert ImageContext("cd" * 32, "a", "b", "", "", 0, trunc=False).ID == "sha256:" + "cd" * 32
    out = format_items("table {{.Repository}}\t{{.Tag}}\t{{.ID}}", [i], IMAGES_HEADER)
    assert out == ("REPOSITORY           TAG       IMAGE ID\n"
                   "localhost:5000/app   v1        cdcdcdcdcdcd\n")
    n = NetworkContext("mynet", "e" * 64, "bridge", labels={"a": "1"})
    assert format_items("{{.ID}} {{.Name}} {{.Driver}} {{.Scope}} {{.Labels}}", [n]) == \
        "eeeeeeeeeeee mynet bridge local a=1\n"
    assert format_items("table {{.Name}}", [n], NETWORKS_HEADER) == "NAME\nmynet\n"


# ---- filters --------------------------------------------------------------------------------

def names(recs):
    return [r.name for r in recs]


def ps(*args, exposed=None):
    return names(filters.containers([WEB, DB, NEW], filters.parse(args, filters.PS_KEYS),
                                    exposed))


def test_ps_filters_combine_as_docker():
    assert ps("status=running") == ["web"]
    assert ps("status=running", "status=exited") == ["web", "db"]     # same key: any
    assert ps("label=app=shop", "status=exited") == ["db"]            # keys: all
    assert ps("label=app", "label=tier=front") == ["web"]             # labels: all
    assert ps("name=^/w") == ["web"] and ps("name=e") == ["web", "new"]
    assert ps(f"id={DB.id[:5]}") == ["db"]
    assert ps("exited=3") == ["db"] and ps("exited=0") == []
    assert ps("ancestor=nginx:1.25") == ["web"] and ps("ancestor=nginx") == []  # nginx:latest
    assert ps("ancestor=" + "ab" * 6) == ["web", "db", "new"]
    assert ps("before=new") == ["web", "db"] and ps("since=db") == ["web", "new"]
    assert ps("publish=80") == ["web"] and ps("publish=79-81/tcp") == ["web"]
    assert ps("publish=80/udp") == []
    assert ps("expose=443", exposed=lambda r: {"443/tcp"} if r.name == "new" else set()) == \
        ["new"]
    assert ps("volume=/srv/www") == ["web"] and ps("network=bridge") == ["web", "db", "new"]
    assert ps("health=none") == ["web", "db", "new"] and ps("health=healthy") == []


def test_bad_filters_fail_as_docker():
    with pytest.raises(UsageError) as e:
        filters.parse(["status"], filters.PS_KEYS)
    assert "bad format of filter (expected name=value)" in str(e.value)
    with pytest.raises(PmdError) as e:
        filters.parse(["colour=red"], filters.PS_KEYS)
    assert str(e.value) == "invalid filter 'colour'" and e.value.exit_code == 1
    with pytest.raises(PmdError, match="invalid filter 'status=sleeping'"):
        ps("status=sleeping")
    with pytest.raises(NotFound, match="No such container: ghost"):
        ps("before=ghost")
    # looked up first, as dockerd: an empty list does not hide an unknown reference
    with pytest.raises(NotFound, match="No such container: zz"):
        filters.containers([], filters.parse(["since=zz"], filters.PS_KEYS))
    with pytest.raises(NotFound, match="No such image: nope"):
        filters.images([], {"before": ["nope"]})
    # a name filter is a regular expression: a bad one is a bad filter, not a crash
    with pytest.raises(InvalidFilter, match=r"invalid filter 'name=\['"):
        ps("name=[")
    # the API's parsed filters go through the same keys (InvalidFilter: HTTP 400)
    with pytest.raises(InvalidFilter, match="invalid filter 'colour'"):
        filters.check({"colour": ["red"]}, filters.PS_KEYS)
    assert isinstance(InvalidFilter("x"), ValueError)


def test_ps_lists_stopped_containers_as_dockerd():
    assert not filters.lists_stopped(False, {}, -1)
    assert filters.lists_stopped(True, {}, -1)
    assert filters.lists_stopped(False, {"status": ["exited"]}, -1)
    assert filters.lists_stopped(False, {"exited": ["0"]}, -1)
    assert filters.lists_stopped(False, {}, 1)


def test_images_filters():
    rows = [{"Repository": "localhost:5000/app", "Tag": "v1", "Created": 30.0,
             "Labels": {"team": "a"}},
            {"Repository": "busybox", "Tag": "latest", "Created": 20.0, "Labels": {}},
            {"Repository": "<none>", "Tag": "<none>", "Created": 10.0, "Labels": {}}]

    def run(*args):
        created = {"busybox": 20.0}
        return [r["Repository"] for r in filters.images(
            rows, filters.parse(args, filters.IMAGES_KEYS), created.__getitem__)]

    assert run("dangling=true") == ["<none>"]
    assert run("dangling=false") == ["localhost:5000/app", "busybox"]
    assert run("reference=localhost:5000/*") == ["localhost:5000/app"]
    assert run("reference=localhost:5000/app:v*") == ["localhost:5000/app"]
    assert run("reference=busy*", "reference=*/app") == ["localhost:5000/app", "busybox"]
    assert run("label=team=a") == ["localhost:5000/app"]
    assert run("before=busybox") == ["<none>"] and run("since=busybox") == ["localhost:5000/app"]


def test_volume_filters():
    vols = [Volume(name=n, driver=d, labels=lab, created="")
            for n, d, lab in (("data", "local", {"k": "v"}), ("cache", "local", {}),
                              ("mydata2", "other", {}))]
    used = {"data"}

    def run(*args):
        return [v.name for v in filters.volumes(vols, filters.parse(args, filters.VOLUME_KEYS),
                                                lambda v: v.name in used)]

    assert run("dangling=true") == ["cache", "mydata2"] and run("dangling=0") == ["data"]
    assert run("name=data") == ["data", "mydata2"]        # any part of the name
    assert run("driver=other") == ["mydata2"] and run("label=k=v") == ["data"]
    assert run("name=data", "dangling=true") == ["mydata2"]
    with pytest.raises(InvalidFilter, match="invalid filter 'dangling=maybe'"):
        run("dangling=maybe")
    with pytest.raises(InvalidFilter, match="invalid filter 'size'"):
        run("size=1")


def test_network_and_prune_filters():
    nets = [Network(name=n, id=i * 64, bridge="b", subnet="", gateway="", created="",
                    driver=d, labels=lab)
            for n, i, d, lab in (("bridge", "a", "bridge", {}), ("host", "b", "host", {}),
                                 ("mynet", "c", "bridge", {"env": "test"}))]

    def run(*args):
        return [n.name for n in filters.networks(nets, filters.parse(args, filters.NETWORK_KEYS))]

    assert run("driver=bridge") == ["bridge", "mynet"]
    assert run("name=net") == ["mynet"] and run("id=b") == ["host"]
    assert run("type=custom") == ["mynet"] and run("label=env=test") == ["mynet"]
    items = [("old", 100.0, {"keep": "1"}), ("mid", 200.0, {}), ("new", 1000.0, {})]

    def prune(*args):
        return [x[0] for x in filters.prune(items, filters.parse(args, filters.PRUNE_KEYS),
                                            lambda x: x[1], lambda x: x[2], now=1060.0)]

    assert prune("until=1m") == ["old", "mid"]            # created before now - 60 s
    assert prune("until=150") == ["old"]
    assert prune("label=keep") == ["old"] and prune("label!=keep") == ["mid", "new"]
    assert filters.go_duration("1h30m") == 5400 and filters.go_duration("bogus") is None
    with pytest.raises(UsageError):
        filters.timestamp("yesterday")
