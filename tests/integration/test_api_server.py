"""`system service`: the Docker Engine API server as real clients see it (the docker CLI 28.x
and Debian's 20.10, docker-py 7 and Debian's 5), and its socket: permissions, a server already
there, TLS on TCP, systemd socket activation, idle exit and SIGTERM."""
from __future__ import annotations

import grp
import os
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO_ROOT
from tests.integration import servers as S
from tests.integration.apiserver import (
    CLIS,
    DEFAULT_CLI,
    SYSTEM_PYTHON,
    ApiServer,
    ping,
)


def _need(path: str) -> None:
    if not shutil.which(path):
        pytest.skip(f"{path} is not installed (make deps)")


@pytest.mark.parametrize("cli", CLIS)
def test_docker_cli_negotiates_our_api_version(pmd, tmp_path, cli):
    _need(cli)
    with ApiServer(pmd, tmp_path) as api:
        out = api.docker("version", "--format", "{{.Server.APIVersion}} {{.Server.MinAPIVersion}}"
                         " {{.Client.APIVersion}} {{.Server.Os}}", cli=cli).stdout.split()
        # a client newer than ours comes down to 1.43 (28.x asks for 1.50, Debian 13's 26.x
        # for 1.45); Debian 12's 20.10 asks for 1.41
        major = int(api.docker("version", "--format", "{{.Client.Version}}", cli=cli)
                    .stdout.split(".")[0])
        assert out == ["1.43", "1.24", "1.41" if major < 24 else "1.43", "linux"]
        res = api.docker("search", "x", cli=cli, check=False)
        assert res.returncode == 1
        assert res.stderr.strip() == ("Error response from daemon: image search is not "
                                      "implemented by pyminidocker yet")


def test_docker_py_both_versions(pmd, tmp_path):
    script = ("import docker, sys\n"
              "c = docker.DockerClient(base_url=sys.argv[1], version='auto')\n"
              "v = c.version()\n"
              "print(docker.__version__.split('.')[0], c.ping(), v['ApiVersion'],"
              " v['MinAPIVersion'])\n"
              "try:\n    c.api.search('x')\n"
              "except docker.errors.APIError as e:\n"
              "    print(e.status_code, e.explanation)\n")
    with ApiServer(pmd, tmp_path) as api:
        outs = []
        for python in (sys.executable, SYSTEM_PYTHON):
            res = subprocess.run([python, "-c", script, f"unix://{api.sock}"], check=False, text=True,
                                 capture_output=True, timeout=60, cwd="/")
            assert res.returncode == 0, res.stderr
            outs.append(res.stdout.splitlines())
    # the venv's docker-py is 7.x; Debian's python3-docker is 5.x on Debian 12, 7.x on 13
    for out, majors in zip(outs, (["7"], ["5", "7"])):
        assert out[0].split()[0] in majors, out
        assert out == [f"{out[0].split()[0]} True 1.43 1.24",
                       "501 image search is not implemented by pyminidocker yet"]


def test_socket_is_0660_root_and_the_group(pmd, tmp_path):
    with ApiServer(pmd, tmp_path) as api:
        st = os.stat(api.sock)
        assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o660
        try:
            want = grp.getgrnam("docker").gr_gid
        except KeyError:
            want = 0
        assert (st.st_uid, st.st_gid) == (0, want)
    other = tmp_path / "other"
    other.mkdir()
    with ApiServer(pmd, other, "--group", "nogroup") as api:
        assert os.stat(api.sock).st_gid == grp.getgrnam("nogroup").gr_gid


def test_a_live_socket_is_refused_a_stale_one_replaced(pmd, tmp_path):
    with ApiServer(pmd, tmp_path) as api:
        res = pmd("system", "service", f"unix://{api.sock}", check=False, timeout=30)
        assert res.returncode == 125
        assert res.stderr == f"Error: a server is already listening on {api.sock}\n"
        assert ping(api.sock)  # the first one is untouched
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(api.sock))
    stale.close()  # a socket file nobody listens on, as a killed server leaves it
    with ApiServer(pmd, tmp_path) as again:
        assert again.docker("version", "--format", "{{.Server.APIVersion}}").stdout == "1.43\n"
    (tmp_path / "file").write_text("")
    res = pmd("system", "service", f"unix://{tmp_path / 'file'}", check=False, timeout=30)
    assert (res.returncode, res.stderr) == (125, f"Error: {tmp_path / 'file'} exists and is "
                                                 "not a socket\n")


@pytest.mark.parametrize("args, message", [
    (["tcp://127.0.0.1:2375"], "refusing to serve the API on tcp:// without TLS: use "
                               "--tlsverify with --tlscacert, --tlscert and --tlskey"),
    (["--tlsverify", "tcp://127.0.0.1:2375"], "--tlsverify needs --tlscacert, --tlscert and "
                                              "--tlskey"),
    (["--tlscert", "x", "tcp://127.0.0.1:2375"], "--tlscacert, --tlscert and --tlskey need "
                                                 "--tlsverify"),
    (["unix://relative"], "invalid URI 'unix://relative': a unix socket needs an absolute path"),
    (["--time", "-1"], "--time must be 0 (never exit) or a number of seconds"),
    (["--group", "no-such-group-here", "unix:///tmp/x.sock"], "no such group: no-such-group-here"),
])
def test_bad_service_arguments(pmd, args, message):
    res = pmd("system", "service", *args, check=False, timeout=30)
    assert (res.returncode, res.stderr) == (125, f"Error: {message}\n")


def _pki(d):
    """A CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)

    def make(cn, issuer=None, issuer_key=None, ca=False, usage=None, san=None):
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
        b = (x509.CertificateBuilder().subject_name(name)
             .issuer_name(issuer.subject if issuer else name).public_key(key.public_key())
             .serial_number(x509.random_serial_number())
             .not_valid_before(now - datetime.timedelta(minutes=5))
             .not_valid_after(now + datetime.timedelta(days=1))
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if usage:
            b = b.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        if san:
            b = b.add_extension(x509.SubjectAlternativeName(san), critical=False)
        cert = b.sign(issuer_key or key, hashes.SHA256())
        return cert, key

    def write(name, cert, key):
        (d / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (d / f"{name}-key.pem").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))

    ca, ca_key = make("pmd test CA", ca=True)
    server, server_key = make("127.0.0.1", ca, ca_key, usage=ExtendedKeyUsageOID.SERVER_AUTH,
                              san=[x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    client, client_key = make("client", ca, ca_key, usage=ExtendedKeyUsageOID.CLIENT_AUTH)
    other_ca, other_key = make("another CA", ca=True)
    stranger, stranger_key = make("stranger", other_ca, other_key,
                                  usage=ExtendedKeyUsageOID.CLIENT_AUTH)
    (d / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    write("server", server, server_key)
    write("client", client, client_key)
    write("stranger", stranger, stranger_key)


def test_tcp_with_tls_requires_a_client_certificate(pmd, tmp_path):
    _pki(tmp_path)
    port = S.free_port()
    proc = pmd.popen("system", "service", "--time", "0", "--tlsverify",
                     "--tlscacert", str(tmp_path / "ca.pem"),
                     "--tlscert", str(tmp_path / "server.pem"),
                     "--tlskey", str(tmp_path / "server-key.pem"), f"tcp://127.0.0.1:{port}")
    try:
        S.wait_until(lambda: _tcp_open(port) or proc.poll() is not None, timeout=20,
                     what="the TLS server")
        assert proc.poll() is None, proc.stderr.read()
        env = dict(os.environ, HOME=str(tmp_path), DOCKER_CONFIG=str(tmp_path / ".docker"))
        base = [DEFAULT_CLI, "-H", f"tcp://127.0.0.1:{port}", "--tlsverify",
                "--tlscacert", str(tmp_path / "ca.pem")]
        ok = subprocess.run([*base, "--tlscert", str(tmp_path / "client.pem"), "--tlskey",
                             str(tmp_path / "client-key.pem"), "version", "--format",
                             "{{.Server.APIVersion}}"],
                            check=False, capture_output=True, text=True, env=env, timeout=60)
        assert (ok.returncode, ok.stdout) == (0, "1.43\n"), ok.stderr
        # a certificate of another CA, and none at all: no HTTP is ever answered
        for cert in ("stranger", None):
            ctx = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
            if cert:
                ctx.load_cert_chain(tmp_path / f"{cert}.pem", tmp_path / f"{cert}-key.pem")
            with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
                with pytest.raises((ssl.SSLError, ConnectionError)):
                    with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                        tls.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n")
                        if not tls.recv(64):  # TLS 1.3: the alert comes after the handshake
                            raise ConnectionResetError("closed without an answer")
        # plain HTTP on the TLS port is not answered either
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            raw.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n")
            assert not raw.recv(64).startswith(b"HTTP/1.1 200")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0


def _tcp_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def test_socket_activation(pmd, tmp_path):
    """As systemd passes it (LISTEN_PID, LISTEN_FDS=1, the socket as fd 3): the server uses
    it rather than binding, and leaves the socket file, which systemd owns, in place."""
    path = tmp_path / "activated.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen()
    argv = pmd.argv("system", "service", "--time", "0", f"unix://{tmp_path / 'unused.sock'}")
    # bash (dash takes fds 0-9 only) sets LISTEN_PID to its own pid, which exec keeps for the server, and moves the
    # socket to fd 3
    fd = listener.fileno()
    shell = f'LISTEN_PID=$$ LISTEN_FDS=1 exec "$@" 3<&{fd} {fd}<&-'
    proc = subprocess.Popen(["bash", "-c", shell, "bash", *argv], env=pmd.env(), cwd=REPO_ROOT,
                            pass_fds=(fd,), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    listener.close()
    try:
        S.wait_until(lambda: ping(path) or proc.poll() is not None, timeout=20,
                     what="the activated server")
        assert proc.poll() is None, proc.stderr.read()
        env = dict(os.environ, DOCKER_HOST=f"unix://{path}", HOME=str(tmp_path))
        res = subprocess.run([DEFAULT_CLI, "version", "--format", "{{.Server.APIVersion}}"],
                             check=False, capture_output=True, text=True, env=env, timeout=60)
        assert res.stdout == "1.43\n", res.stderr  # the server's own version, not the client's
        assert not (tmp_path / "unused.sock").exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    assert path.exists()  # systemd's, not ours to remove


def test_idle_server_exits_after_time(pmd, tmp_path):
    sock = tmp_path / "idle.sock"
    t0 = time.monotonic()
    proc = pmd.popen("system", "service", "--time", "1", f"unix://{sock}")
    S.wait_until(lambda: ping(sock) or proc.poll() is not None, timeout=20, what="the server")
    # each request restarts the clock: busy for 2 s, it does not leave after 1
    busy_until = time.monotonic() + 2
    while time.monotonic() < busy_until:
        assert ping(sock)
        time.sleep(0.3)
    assert proc.wait(timeout=20) == 0
    assert time.monotonic() - t0 >= 3
    assert not sock.exists()


def test_sigterm_stops_it_cleanly(pmd, tmp_path):
    api = ApiServer(pmd, tmp_path).start()
    code, err = api.stop()
    assert (code, err) == (0, "")
    assert not api.sock.exists()


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024


def test_an_idle_server_waits_small_and_stops_cleanly(pmd, tmp_path):
    """Until its first client, the server holds only its socket (aiohttp and the engine come
    with the first connection): a server nobody uses costs a third of one in use. SIGTERM
    then still exits 0 and removes the socket."""
    sock = tmp_path / "idle.sock"
    proc = pmd.popen("system", "service", "--time", "0", f"unix://{sock}")
    try:
        deadline = time.monotonic() + 20
        while not sock.exists():
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(0.3)
        idle = _rss_mb(proc.pid)
        assert idle < 20, f"{idle:.1f} MB before any client"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert (proc.returncode, err) == (0, "")
    assert not sock.exists()
    (tmp_path / "second").mkdir()
    api = ApiServer(pmd, tmp_path / "second").start()  # the first client's wait: served
    try:
        assert api.docker("version", "--format", "{{.Server.APIVersion}}").stdout == "1.43\n"
    finally:
        assert api.stop() == (0, "")
