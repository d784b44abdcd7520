"""Docker's inspect documents: every key Docker 20.10 prints, with Docker's types, and what the
usual --format one-liners of scripts read from them."""
from __future__ import annotations

import json

from pyminidocker import dockerjson
from pyminidocker.cli.gotemplate import Template, TemplateError
from pyminidocker.store.containers import ContainerRecord, State
from pyminidocker.store.images import ImageRecord
from pyminidocker.store.networks import Network

# The keys `docker inspect` (Docker 20.10) prints for a container started with
# `docker run -d -p 8080:80 nginx`, section by section.
DOCKER_KEYS = {
    "": "Id Created Path Args State Image ResolvConfPath HostnamePath HostsPath LogPath Name "
        "RestartCount Driver Platform MountLabel ProcessLabel AppArmorProfile ExecIDs "
        "HostConfig GraphDriver Mounts Config NetworkSettings",
    "State": "Status Running Paused Restarting OOMKilled Dead Pid ExitCode Error StartedAt "
             "FinishedAt",
    "HostConfig": "Binds ContainerIDFile LogConfig NetworkMode PortBindings RestartPolicy "
                  "AutoRemove VolumeDriver VolumesFrom CapAdd CapDrop CgroupnsMode Dns "
                  "DnsOptions DnsSearch ExtraHosts GroupAdd IpcMode Cgroup Links OomScoreAdj "
                  "PidMode Privileged PublishAllPorts ReadonlyRootfs SecurityOpt UTSMode "
                  "UsernsMode ShmSize Runtime ConsoleSize Isolation CpuShares Memory NanoCpus "
                  "CgroupParent BlkioWeight BlkioWeightDevice BlkioDeviceReadBps "
                  "BlkioDeviceWriteBps BlkioDeviceReadIOps BlkioDeviceWriteIOps CpuPeriod "
                  "CpuQuota CpuRealtimePeriod CpuRealtimeRuntime CpusetCpus CpusetMems Devices "
                  "DeviceCgroupRules DeviceRequests KernelMemory KernelMemoryTCP "
                  "MemoryReservation MemorySwap MemorySwappiness OomKillDisable PidsLimit "
                  "Ulimits CpuCount CpuPercent IOMaximumIOps IOMaximumBandwidth MaskedPaths "
                  "ReadonlyPaths",
    "HostConfig.LogConfig": "Type Config",
    "HostConfig.RestartPolicy": "Name MaximumRetryCount",
    "GraphDriver": "Data Name",
    "GraphDriver.Data": "LowerDir MergedDir UpperDir WorkDir",
    "Config": "Hostname Domainname User AttachStdin AttachStdout AttachStderr ExposedPorts Tty "
              "OpenStdin StdinOnce Env Cmd Image Volumes WorkingDir Entrypoint OnBuild Labels "
              "StopSignal",
    "NetworkSettings": "Bridge SandboxID HairpinMode LinkLocalIPv6Address "
                       "LinkLocalIPv6PrefixLen Ports SandboxKey SecondaryIPAddresses "
                       "SecondaryIPv6Addresses EndpointID Gateway GlobalIPv6Address "
                       "GlobalIPv6PrefixLen IPAddress IPPrefixLen IPv6Gateway MacAddress "
                       "Networks",
    "NetworkSettings.Networks.bridge": "IPAMConfig Links Aliases NetworkID EndpointID Gateway "
                                       "IPAddress IPPrefixLen IPv6Gateway GlobalIPv6Address "
                                       "GlobalIPv6PrefixLen MacAddress DriverOpts",
}

BRIDGE = Network(name="bridge", id="f" * 64, bridge="pmd0", subnet="172.17.0.0/16",
                 gateway="172.17.0.1", created="2026-12-04T05:00:00Z")
CID = "4fa6e0f0c678" + "0" * 52


def running_container(**host) -> ContainerRecord:
    return ContainerRecord(
        id=CID, name="web", image="ab" * 32, image_name="nginx:1.25",
        created="2026-12-04T05:01:00.123456789Z", argv=["nginx", "-g", "daemon off;"],
        env=["DEBUG=1", "PATH=/custom"], cwd="/", user="", hostname="4fa6e0f0c678",
        cmd=["nginx", "-g", "daemon off;"], labels={"maintainer": "NGINX"},
        host={"network": "bridge", "ports": ["8080:80"], "binds": ["/srv/www:/usr/share/nginx/html:ro"],
              "image_env": ["PATH=/usr/local/sbin:/usr/bin", "NGINX_VERSION=1.25.3"], **host},
        state=State(status="running", pid=4242, ip="172.17.0.2", started_at="2026-12-04T05:01:01Z",
                    ports=["80/tcp -> 0.0.0.0:8080"]))


def inspect(rec=None, **kw):
    doc = dockerjson.container(rec or running_container(), "/var/lib/docker-mini/containers/x",
                               {"ExposedPorts": {"80/tcp": {}}, "StopSignal": "SIGQUIT"},
                               {"bridge": BRIDGE}, **kw)
    return json.loads(json.dumps(doc))   # what `inspect` prints and scripts parse


def fmt(text: str, doc) -> str:
    return Template(text).execute(doc, missingkey="error")


def test_container_has_every_key_docker_prints():
    doc = inspect()
    for section, keys in DOCKER_KEYS.items():
        node = doc
        for part in filter(None, section.split(".")):
            node = node[part]
        missing = set(keys.split()) - set(node)
        assert not missing, f"{section or 'top level'} lacks {sorted(missing)}"


def test_container_values_and_types_scripts_read():
    doc = inspect()
    assert fmt("{{.NetworkSettings.IPAddress}}", doc) == "172.17.0.2"
    assert fmt("{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", doc) == "172.17.0.2"
    assert fmt("{{.NetworkSettings.Networks.bridge.Gateway}}/{{.NetworkSettings.IPPrefixLen}}",
               doc) == "172.17.0.1/16"
    assert fmt('{{(index (index .NetworkSettings.Ports "80/tcp") 0).HostPort}}', doc) == "8080"
    assert fmt("{{json .HostConfig.PortBindings}}", doc) == \
        '{"80/tcp":[{"HostIp":"","HostPort":"8080"}]}'
    assert fmt("{{.State.Status}} {{.State.Running}} {{.State.Pid}} {{.State.ExitCode}}", doc) \
        == "running true 4242 0"
    assert fmt("{{.HostConfig.RestartPolicy.Name}} {{.HostConfig.NetworkMode}}", doc) == \
        "no default"
    assert fmt("{{.Name}} {{.Config.Image}} {{.Config.StopSignal}}", doc) == \
        "/web nginx:1.25 SIGQUIT"
    # the image's variables, the container's overriding them (PATH) and added after
    assert doc["Config"]["Env"] == ["PATH=/custom", "NGINX_VERSION=1.25.3", "DEBUG=1"]
    assert doc["Config"]["ExposedPorts"] == {"80/tcp": {}}
    assert fmt('{{index .Config.Labels "maintainer"}}', doc) == "NGINX"
    assert doc["Mounts"] == [{"Type": "bind", "Source": "/srv/www",
                              "Destination": "/usr/share/nginx/html", "Mode": "ro", "RW": False,
                              "Propagation": "rprivate"}]
    assert fmt("{{range .Mounts}}{{.Source}}:{{.Destination}}{{end}}", doc) == \
        "/srv/www:/usr/share/nginx/html"
    # Docker's zero values, typed as Docker types them
    hc = doc["HostConfig"]
    assert hc["CapAdd"] is None and hc["Dns"] == [] and hc["Memory"] == 0
    assert hc["PidsLimit"] is None and hc["ConsoleSize"] == [0, 0]
    assert doc["ExecIDs"] is None and doc["RestartCount"] == 0
    assert doc["State"]["FinishedAt"] == "0001-01-01T00:00:00Z"


def test_no_health_check_fails_as_docker_fails():
    # Docker omits State.Health without a health check; scripts test for it this way
    try:
        fmt("{{.State.Health.Status}}", inspect())
    except TemplateError as e:
        assert str(e) == ('template: :1:8: executing "" at <.State.Health.Status>: '
                          'map has no entry for key "Health"')
    else:
        raise AssertionError("expected an error")
    # without missingkey=error (ps, images) the same lookup prints <no value>
    assert Template("{{.State.Health.Status}}").execute(inspect()) == "<no value>"


def test_stopped_container_keeps_its_keys_with_empty_values():
    rec = running_container()
    rec.state = State(status="exited", exit_code=3, finished_at="2026-12-04T05:02:00Z")
    doc = inspect(rec)
    assert fmt("{{.State.Status}} {{.State.ExitCode}} {{.State.Pid}} {{.State.Running}}",
               doc) == "exited 3 0 false"
    assert doc["NetworkSettings"]["IPAddress"] == ""
    assert doc["NetworkSettings"]["Networks"]["bridge"]["IPAddress"] == ""
    assert doc["NetworkSettings"]["Ports"] == {}


def test_resources_and_security_in_hostconfig():
    doc = inspect(running_container(memory=64 * 1024 * 1024, cpus=1.5, pids_limit=100,
                                    cap_add=["NET_ADMIN"], read_only=True, no_new_privs=True,
                                    privileged=False))
    hc = doc["HostConfig"]
    assert (hc["Memory"], hc["NanoCpus"], hc["PidsLimit"]) == (67108864, 1500000000, 100)
    assert hc["CapAdd"] == ["NET_ADMIN"] and hc["ReadonlyRootfs"] is True
    assert hc["SecurityOpt"] == ["no-new-privileges"]
    assert hc["MaskedPaths"] and hc["ReadonlyPaths"]
    doc = inspect(running_container(privileged=True))
    assert doc["HostConfig"]["Privileged"] is True and doc["HostConfig"]["MaskedPaths"] is None


def test_host_and_user_networks():
    rec = running_container(network="host", ports=[])
    rec.state.ip = ""
    doc = inspect(rec)
    assert doc["HostConfig"]["NetworkMode"] == "host"
    assert list(doc["NetworkSettings"]["Networks"]) == ["host"]
    assert doc["NetworkSettings"]["IPAddress"] == ""
    mynet = Network(name="mynet", id="e" * 64, bridge="pmd1", subnet="10.77.0.0/24",
                    gateway="10.77.0.1", created="2026-12-04T05:00:00Z")
    rec = running_container(network="mynet", ports=[])
    rec.state.ip = "10.77.0.5"
    doc = json.loads(json.dumps(dockerjson.container(rec, "/x", {}, {"mynet": mynet})))
    ep = doc["NetworkSettings"]["Networks"]["mynet"]
    assert (ep["IPAddress"], ep["Gateway"], ep["IPPrefixLen"], ep["NetworkID"]) == \
        ("10.77.0.5", "10.77.0.1", 24, "e" * 64)
    assert ep["Aliases"] == ["4fa6e0f0c678"]
    # Docker fills the top-level address only for the default bridge
    assert doc["NetworkSettings"]["IPAddress"] == ""


def test_image_inspect_has_dockers_keys():
    rec = ImageRecord(id="ab" * 32, digest="sha256:" + "cd" * 32, names=["nginx:1.25"],
                      layer="x", created="2026-11-01T00:00:00Z", loaded="2026-12-04T05:00:00Z")
    cfg = {"architecture": "amd64", "os": "linux", "created": "2026-11-01T00:00:00Z",
           "config": {"Env": ["PATH=/usr/bin"], "Cmd": ["nginx"], "ExposedPorts": {"80/tcp": {}},
                      "Labels": {"maintainer": "NGINX"}},
           "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "11" * 32]}}
    doc = json.loads(json.dumps(dockerjson.image(rec, cfg, 187_000_000, ["nginx:1.25"],
                                                 ["nginx@sha256:" + "cd" * 32])))
    want = ("Id RepoTags RepoDigests Parent Comment Created Container ContainerConfig "
            "DockerVersion Author Config Architecture Os Size VirtualSize GraphDriver RootFS "
            "Metadata").split()
    assert not set(want) - set(doc)
    assert fmt("{{.Os}}/{{.Architecture}} {{.Size}} {{index .RepoTags 0}}", doc) == \
        "linux/amd64 187000000 nginx:1.25"
    assert fmt('{{index .Config.Labels "maintainer"}} {{json .Config.Cmd}}', doc) == \
        'NGINX ["nginx"]'
    assert fmt("{{len .RootFS.Layers}} {{.Metadata.LastTagTime}}", doc) == \
        "1 2026-12-04T05:00:00Z"


def test_network_inspect_has_dockers_keys():
    doc = json.loads(json.dumps(dockerjson.network(
        BRIDGE, {CID: {"Name": "web", "IPv4Address": "172.17.0.2/16"}})))
    want = ("Name Id Created Scope Driver EnableIPv6 IPAM Internal Attachable Ingress "
            "ConfigFrom ConfigOnly Containers Options Labels").split()
    assert not set(want) - set(doc)
    assert fmt("{{range .IPAM.Config}}{{.Subnet}} {{.Gateway}}{{end}}", doc) == \
        "172.17.0.0/16 172.17.0.1"
    assert fmt("{{range .Containers}}{{.Name}}={{.IPv4Address}}{{end}}", doc) == \
        "web=172.17.0.2/16"
    assert fmt("{{.Driver}} {{.Scope}} {{.Internal}}", doc) == "bridge local false"
