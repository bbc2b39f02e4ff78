"""The demo on two nodes behind a real nginx, with deploy/nginx.conf.

Two ``python run.py --xheaders`` processes share one Redis (sessions and login
counters), one PostgreSQL database (accounts, file records) and the upload
storage: S3 (a real SeaweedFS) or one upload folder; nginx (Debian's, run by the
test with ``daemon off`` on loopback ports) spreads requests over them.
Everything is started on loopback and stopped by PID; each step is bounded in
time.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import tornado.httpclient
import tornado.httpserver
import tornado.netutil
import tornado.web
import tornado.websocket

from webframe.testing import Client, CookieJar

try:
    from tests.redis_server import RedisServer
    from tests.seaweed_server import SeaweedServer
except ModuleNotFoundError:  # tests/ is not a package and the rootdir is not on sys.path
    from redis_server import RedisServer  # type: ignore[no-redef,import-not-found,unused-ignore]
    from seaweed_server import (  # type: ignore[no-redef,import-not-found,unused-ignore]
        SeaweedServer,
    )

if TYPE_CHECKING:
    from tests.sessions.postgres_server import PostgresServer

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "deploy" / "nginx.conf"
SECRET = "two-nodes-test-secret-" + "x" * 32
PASSWORD = "correct horse battery"
START_TIMEOUT = 20.0
MiB = 1024 * 1024


def _missing(message: str) -> None:
    if os.environ.get("WEBFRAME_REQUIRE_SERVICES") == "1":
        pytest.fail(message + " (WEBFRAME_REQUIRE_SERVICES=1 forbids skipping)")
    pytest.skip(message)


def find_nginx() -> str:
    path = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )
    if path is None:
        _missing("nginx is not installed: apt-get install nginx")
        raise AssertionError  # unreachable
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _replace_once(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"deploy/nginx.conf no longer has exactly one {old!r}"
    return text.replace(old, new)


def render_nginx_conf(
    folder: Path,
    *,
    http_port: int,
    https_port: int,
    nodes: list[int],
    cert: Path,
    key: Path,
) -> Path:
    """deploy/nginx.conf with this test's ports, nodes and files, all under `folder`."""
    text = CONF.read_text()
    text = _replace_once(text, "user www-data;", "user root;" if os.geteuid() == 0 else "")
    text = "daemon off;\n" + text
    text = _replace_once(text, "pid /run/nginx.pid;", f"pid {folder}/nginx.pid;")
    text = _replace_once(
        text, "error_log /var/log/nginx/error.log warn;", f"error_log {folder}/error.log info;"
    )
    text = _replace_once(
        text,
        "access_log /var/log/nginx/webframe.access.log webframe;",
        f"access_log {folder}/access.log webframe;",
    )
    servers = re.findall(r"^\s*server 10\.0\.0\.\d+:8000 .*;$\n", text, flags=re.M)
    assert len(servers) == 2, "deploy/nginx.conf: expected two example node lines"
    text = text.replace(servers[1], "")
    text = _replace_once(
        text,
        servers[0],
        "".join(f"        server 127.0.0.1:{p} max_fails=1 fail_timeout=5s;\n" for p in nodes),
    )
    text = _replace_once(text, "listen 80;", f"listen 127.0.0.1:{http_port};")
    text = _replace_once(text, "listen [::]:80;", "")
    text = _replace_once(text, "listen 443 ssl;", f"listen 127.0.0.1:{https_port} ssl;")
    text = _replace_once(text, "listen [::]:443 ssl;", "")
    text = _replace_once(text, "/etc/ssl/certs/webframe.pem", str(cert))
    text = _replace_once(text, "/etc/ssl/private/webframe.key", str(key))
    # Debian's nginx has its temp folders compiled in under /var/lib/nginx.
    temp = "".join(
        f"    {kind}_temp_path {folder}/{kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    text = _replace_once(text, "http {\n", "http {\n" + temp)
    path = folder / "nginx.conf"
    path.write_text(text)
    return path


def make_cert(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "cert.pem", folder / "key.pem"
    openssl = shutil.which("openssl")
    if openssl is None:
        _missing("openssl is not installed (for the test's certificate): apt-get install openssl")
        raise AssertionError  # unreachable
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    return cert, key


def nginx_t(nginx: str, folder: Path, conf: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [nginx, "-t", "-p", str(folder), "-c", str(conf)],
        capture_output=True,
        text=True,
        timeout=30,
    )


# ------------------------------------------------------------- the config alone


def test_deploy_conf_has_what_several_nodes_need() -> None:
    text = CONF.read_text()
    for directive in (
        "upstream webframe",
        "keepalive 32;",
        "proxy_http_version 1.1;",
        "proxy_request_buffering off;",
        "client_max_body_size 101m;",
        "proxy_set_header X-Real-IP $remote_addr;",
        "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "proxy_set_header X-Forwarded-Proto $scheme;",
        "proxy_set_header Upgrade $http_upgrade;",
        "proxy_set_header Connection $connection_upgrade;",
        "proxy_pass http://webframe;",
    ):
        assert directive in text, directive


def test_nginx_t_accepts_the_rendered_conf_and_refuses_a_broken_one(tmp_path: Path) -> None:
    nginx = find_nginx()
    cert, key = make_cert(tmp_path)
    conf = render_nginx_conf(
        tmp_path, http_port=free_port(), https_port=free_port(), nodes=[8001, 8002],
        cert=cert, key=key,
    )  # fmt: skip
    result = nginx_t(nginx, tmp_path, conf)
    assert result.returncode == 0, result.stderr
    assert "syntax is ok" in result.stderr and "test is successful" in result.stderr
    conf.write_text(
        conf.read_text().replace("proxy_request_buffering off;", "proxy_buffering sometimes;")
    )
    broken = nginx_t(nginx, tmp_path, conf)
    assert broken.returncode != 0 and "proxy_buffering" in broken.stderr


class _Seen(tornado.web.RequestHandler):
    """Records which upstream connection each request came on, and the forwarded headers."""

    def initialize(self, seen: list[tuple[int, str, str]]) -> None:
        self.seen = seen

    def get(self) -> None:
        # nginx's end of the upstream TCP connection: one port per connection.
        stream = self.request.connection.stream  # type: ignore[union-attr]
        self.seen.append(
            (
                stream.socket.getpeername()[1],
                self.request.headers.get("X-Real-IP", ""),
                self.request.headers.get("X-Forwarded-Proto", ""),
            )
        )
        self.write("ok")


class _Echo(tornado.websocket.WebSocketHandler):
    def on_message(self, message: str | bytes) -> None:
        self.write_message(message, binary=isinstance(message, bytes))


def test_nginx_keeps_upstream_connections_alive_and_passes_websockets(tmp_path: Path) -> None:
    nginx = find_nginx()
    cert, key = make_cert(tmp_path)
    seen: list[tuple[int, str, str]] = []

    async def main() -> None:
        app = tornado.web.Application([(r"/seen", _Seen, {"seen": seen}), (r"/ws", _Echo)])
        sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
        server = tornado.httpserver.HTTPServer(app)
        server.add_sockets(sockets)
        node_port = sockets[0].getsockname()[1]
        http_port = free_port()
        conf = render_nginx_conf(
            tmp_path, http_port=http_port, https_port=free_port(), nodes=[node_port],
            cert=cert, key=key,
        )  # fmt: skip
        proxy = Process("nginx", [nginx, "-p", str(tmp_path), "-c", str(conf)], tmp_path / "out")
        http = tornado.httpclient.AsyncHTTPClient(force_instance=True)
        try:
            for _ in range(50):  # nginx is ready when it accepts connections
                try:
                    await http.fetch(f"http://127.0.0.1:{http_port}/seen")
                    break
                except OSError:
                    await asyncio.sleep(0.1)
            seen.clear()
            for _ in range(12):  # each on a new client connection (Tornado's client)
                r = await http.fetch(f"http://127.0.0.1:{http_port}/seen")
                assert r.body == b"ok"
            # Keep-alive: a few upstream connections (at most one per nginx worker
            # that was picked) carry all twelve requests.
            assert len(seen) == 12
            assert len({conn for conn, _ip, _proto in seen}) <= (os.cpu_count() or 1)
            assert {(ip, proto) for _conn, ip, proto in seen} == {("127.0.0.1", "http")}

            ws = await tornado.websocket.websocket_connect(f"ws://127.0.0.1:{http_port}/ws")
            try:
                await ws.write_message("hello through nginx")
                assert await asyncio.wait_for(ws.read_message(), 10) == "hello through nginx"
                await ws.write_message(b"\x00\x01binary", binary=True)
                assert await asyncio.wait_for(ws.read_message(), 10) == b"\x00\x01binary"
            finally:
                ws.close()
        finally:
            http.close()
            proxy.stop()
            server.stop()

    asyncio.run(main())


# ------------------------------------------------------------------ processes


class Process:
    """A child process with its output in a file, stopped by its own PID."""

    def __init__(self, name: str, args: list[str], log: Path, **kwargs: Any) -> None:
        self.name = name
        self.log = log
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, **kwargs
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_port(self, port: int) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited:\n{self.output()[-3000:]}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"{self.name} did not listen on {port}:\n{self.output()[-3000:]}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        return int(self.proc.returncode)


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="module")
def seaweed() -> Iterator[SeaweedServer]:
    with SeaweedServer() as server:
        yield server


class Uploads:
    """Where the nodes keep uploads, and what is in it: stored objects, and uploads
    in flight (temporary files on disk; multipart uploads on S3)."""

    def __init__(self, folder: Path, seaweed: SeaweedServer | None = None) -> None:
        self.folder = folder
        self.seaweed = seaweed
        self.bucket = f"two-nodes-{os.getpid()}-{time.monotonic_ns() % 10**9}"
        if seaweed is not None:
            seaweed.create_bucket(self.bucket)

    @property
    def environ(self) -> dict[str, str]:
        if self.seaweed is None:
            return {"WEBFRAME_UPLOAD_PATH": str(self.folder)}
        return {
            **self.seaweed.environ,
            "WEBFRAME_UPLOAD_PATH": str(self.folder),
            "WEBFRAME_UPLOAD_STORAGE": f"s3://{self.bucket}/locker",
        }

    def stored(self) -> list[str]:
        if self.seaweed is None:
            users = self.folder / "users"
            found = users.rglob("*") if users.exists() else []
            return sorted(str(p.relative_to(self.folder)) for p in found if p.is_file())
        listing = self.seaweed.client().list_objects_v2(Bucket=self.bucket)
        return sorted(item["Key"] for item in listing.get("Contents", []))

    def in_flight(self) -> list[str]:
        tmp = self.folder / ".tmp"
        temp = sorted(p.name for p in tmp.iterdir()) if tmp.exists() else []
        if self.seaweed is None:
            return temp
        listing = self.seaweed.client().list_multipart_uploads(Bucket=self.bucket)
        return temp + sorted(u["Key"] for u in listing.get("Uploads", []))


def _psql(server: PostgresServer, url: str, sql: str) -> str:
    result = subprocess.run(
        [os.path.join(server.bindir, "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
         url, "-c", sql],
        check=True, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    return result.stdout.strip()


@pytest.fixture(params=["s3", "folder"])
def cluster(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    redis: RedisServer,
    postgres_server: PostgresServer,
) -> Iterator[dict[str, Any]]:
    """nginx + node A + node B, sharing Redis, a fresh PostgreSQL database and the
    upload storage (a SeaweedFS bucket, or one folder)."""
    nginx = find_nginx()
    redis.flushall()
    dbname = f"two_nodes_{os.getpid()}_{time.monotonic_ns()}"
    _psql(postgres_server, postgres_server.url, f"CREATE DATABASE {dbname}")
    db_url = postgres_server.url.rpartition("/")[0] + "/" + dbname
    folder = tmp_path / "shared-uploads"
    folder.mkdir()
    seaweed = request.getfixturevalue("seaweed") if request.param == "s3" else None
    uploads = Uploads(folder, seaweed)
    env = {
        **os.environ,
        **uploads.environ,
        "WEBFRAME_COOKIE_SECRET": SECRET,
        "WEBFRAME_SESSION_STORE": redis.url,
        "WEBFRAME_SHUTDOWN_TIMEOUT": "1",
        "DEMO_DATABASE_URL": db_url,
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("WEBFRAME_DEBUG", None)
    started: list[Process] = []
    try:
        ports = {}
        for name in ("a", "b"):
            port = free_port()
            node = Process(
                f"node {name}",
                [sys.executable, "run.py", "--no-debug", "--host", "127.0.0.1",
                 "--port", str(port), "--xheaders", "--instance-path",
                 str(tmp_path / f"instance-{name}")],
                tmp_path / f"node-{name}.log",
                cwd=ROOT, env=env,
            )  # fmt: skip
            started.append(node)
            ports[name] = port
        for node, port in zip(started, ports.values(), strict=True):
            node.wait_port(port)
        web = tmp_path / "nginx"
        web.mkdir()
        cert, key = make_cert(web)
        http_port, https_port = free_port(), free_port()
        conf = render_nginx_conf(
            web, http_port=http_port, https_port=https_port, nodes=list(ports.values()),
            cert=cert, key=key,
        )  # fmt: skip
        checked = nginx_t(nginx, web, conf)
        assert checked.returncode == 0, checked.stderr
        proxy = Process("nginx", [nginx, "-p", str(web), "-c", str(conf)], web / "stdout.log")
        started.append(proxy)
        proxy.wait_port(http_port)
        proxy.wait_port(https_port)
        yield {
            "a": started[0], "b": started[1], "nginx": proxy, "ports": ports,
            "http": f"http://127.0.0.1:{http_port}", "https": f"https://127.0.0.1:{https_port}",
            "uploads": uploads, "db_url": db_url, "postgres": postgres_server, "web": web,
        }  # fmt: skip
    finally:
        for process in reversed(started):
            process.stop()


async def _register_and_log_in(client: Client, name: str) -> None:
    assert (await client.get("/register")).code == 200
    r = await client.post("/register", form={"username": name, "password": PASSWORD})
    assert r.code == 302, r.body[:300]
    assert (await client.post("/logout")).code == 302
    assert (await client.get("/login")).code == 200
    r = await client.post("/login", form={"username": name, "password": PASSWORD})
    assert r.code == 302, (r.code, r.body[:300])


async def _whoami(client: Client) -> str | None:
    r = await client.get("/profile")
    if r.code != 200:
        return None
    match = re.search(r"<h1>Hello, ([^<]+)</h1>", r.body.decode())
    return match.group(1) if match else None


def _stalled_upload(port: int, jar: CookieJar, total: int, sent: int) -> socket.socket:
    """Start a multipart POST of `total` bytes to a node and send only `sent` of them."""
    boundary = "two-nodes-boundary"
    head = (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="files"; filename="big.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    length = len(head) + total + len(tail)
    url = f"http://127.0.0.1:{port}/files"
    cookies = jar.header_for(url)
    token = jar.get("_xsrf")
    assert cookies and token
    request = (
        f"POST /files HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nCookie: {cookies}\r\n"
        f"X-XSRFToken: {token}\r\nAccept: application/json\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(request + head + b"\x01" * sent)
    return sock


def _wait_for(what: str, check: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.mark.slow
def test_the_demo_on_two_nodes_behind_nginx(cluster: dict[str, Any]) -> None:
    ports = cluster["ports"]
    uploads: Uploads = cluster["uploads"]
    payload = os.urandom(3 * MiB + 12345)

    async def main() -> None:
        http = tornado.httpclient.AsyncHTTPClient(force_instance=True)
        jar = CookieJar()  # one browser: the same cookies whichever address it talks to
        via_nginx = Client(http, cluster["http"], jar=jar)
        node_a = Client(http, f"http://127.0.0.1:{ports['a']}", jar=jar)
        node_b = Client(http, f"http://127.0.0.1:{ports['b']}", jar=jar)
        try:
            # Register and log in through nginx (round robin: both nodes take part).
            await _register_and_log_in(via_nginx, "nadia")
            for client in (via_nginx, node_a, node_b, via_nginx):
                assert await _whoami(client) == "nadia"  # the session continues anywhere

            # Upload on node A; download the identical bytes through node B and nginx.
            r = await node_a.post(
                "/files", files={"files": [("data.bin", payload)]},
                headers={"Accept": "application/json"}, request_timeout=60,
            )  # fmt: skip
            assert r.code == 201, r.body[:300]
            saved = json.loads(r.body)["files"][0]
            assert saved["sha256"] == hashlib.sha256(payload).hexdigest()
            for client in (node_b, via_nginx, via_nginx):
                got = await client.get(saved["url"], request_timeout=60)
                assert got.code == 200 and got.body == payload
            listed = await node_b.get("/files", headers={"Accept": "application/json"})
            assert [f["id"] for f in json.loads(listed.body)["files"]] == [saved["id"]]

            # --xheaders: the node sees the client's address and scheme, not nginx's.
            # The client speaks from 127.0.0.2 over HTTPS; nginx from 127.0.0.1 over HTTP.
            secure = await http.fetch(
                cluster["https"] + "/login", network_interface="127.0.0.2",
                validate_cert=False, raise_error=False,
            )  # fmt: skip
            assert secure.code == 200
            cookies = secure.headers.get_list("Set-Cookie")
            assert cookies and all("Secure" in c for c in cookies), cookies
            plain = await http.fetch(
                cluster["http"] + "/login?plain", network_interface="127.0.0.2",
                raise_error=False,
            )  # fmt: skip
            assert plain.code == 200
            assert not any("Secure" in c for c in plain.headers.get_list("Set-Cookie"))
        finally:
            http.close()
        return None

    asyncio.run(main())
    logs = cluster["a"].output() + cluster["b"].output()
    assert re.search(r"200 GET /login \(127\.0\.0\.2\)", logs), logs[-2000:]
    assert re.search(r"200 GET /login\?plain \(127\.0\.0\.2\)", logs), logs[-2000:]
    access = (cluster["web"] / "access.log").read_text()
    used = set(re.findall(r"upstream=127\.0\.0\.1:(\d+)", access))
    assert used == {str(ports["a"]), str(ports["b"])}, "nginx spread requests over both nodes"

    stored_before = uploads.stored()
    assert len(stored_before) == 1 and uploads.in_flight() == []
    jar = _session_jar(cluster)

    # Through nginx an upload streams (proxy_request_buffering off): a node writes
    # it while the client is still sending. A client that gives up leaves nothing.
    nginx_port = int(cluster["http"].rpartition(":")[2])
    # (Over one 8 MiB S3 part, so that a multipart upload has started.)
    sock = _stalled_upload(nginx_port, jar, total=64 * MiB, sent=12 * MiB)
    try:
        _wait_for("nginx to stream the upload to a node", lambda: bool(uploads.in_flight()))
    finally:
        sock.close()
    _wait_for("the abandoned upload to be removed", lambda: not uploads.in_flight())
    assert uploads.stored() == stored_before

    # Stop node A in the middle of an upload: the client gets no success, nothing
    # stays behind (no temp file, no stored file, no record), node B keeps serving.
    sock = _stalled_upload(ports["a"], jar, total=64 * MiB, sent=12 * MiB)
    try:
        _wait_for("the upload to reach node A's storage", lambda: bool(uploads.in_flight()))
        cluster["a"].stop(signal.SIGTERM)
        sock.settimeout(10)
        try:
            answer = sock.recv(65536)
            # Nothing, or an answer that is not a success; never a stored upload.
            assert not answer.startswith(b"HTTP/1.1 2"), answer[:200]
        except (ConnectionResetError, BrokenPipeError):
            pass
    finally:
        sock.close()
    assert cluster["a"].proc.returncode is not None
    _wait_for("the upload in flight to be removed", lambda: not uploads.in_flight())
    assert uploads.stored() == stored_before
    count = _psql(cluster["postgres"], cluster["db_url"], "SELECT count(*) FROM demo_files")
    assert count == "1"

    async def after() -> None:
        http = tornado.httpclient.AsyncHTTPClient(force_instance=True)
        client = Client(http, cluster["http"], jar=jar)
        try:
            for _ in range(4):  # whichever node nginx tries first, B answers
                assert await _whoami(client) == "nadia"
                r = await client.get("/files", headers={"Accept": "application/json"})
                assert r.code == 200 and len(json.loads(r.body)["files"]) == 1
            got = await client.get(json.loads(r.body)["files"][0]["url"], request_timeout=60)
            assert got.code == 200 and got.body == payload
        finally:
            http.close()

    asyncio.run(after())


def _session_jar(cluster: dict[str, Any]) -> CookieJar:
    """A logged-in browser's cookies, for the hand-made upload to node A."""

    async def login() -> CookieJar:
        http = tornado.httpclient.AsyncHTTPClient(force_instance=True)
        jar = CookieJar()
        client = Client(http, cluster["http"], jar=jar)
        try:
            assert (await client.get("/login")).code == 200
            r = await client.post("/login", form={"username": "nadia", "password": PASSWORD})
            assert r.code == 302, r.body[:300]
            await client.xsrf_token()
        finally:
            http.close()
        return jar

    jar: CookieJar = asyncio.run(login())
    return jar
