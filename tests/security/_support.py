"""Shared tools of the hardening suites: real servers (subprocess or a thread of this
process), raw HTTP/1.1 over sockets, a logged-in demo user, and the four checks every
attack case makes (a 4xx/5xx with a message, bounded time, no temp file, still up)."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[2]
SECRET = "hardening-secret-" + "k" * 32
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ----------------------------------------------------------------------- servers


class ServerProcess:
    """``run.py`` (or another app script) as a real subprocess on 127.0.0.1:<free port>."""

    def __init__(
        self,
        instance: Path,
        *,
        script: Path | str = ROOT / "run.py",
        env: Mapping[str, str] | None = None,
        args: tuple[str, ...] = (),
    ) -> None:
        self.instance = Path(instance)
        self.instance.mkdir(parents=True, exist_ok=True)
        self.script = Path(script)
        self.extra_env = dict(env or {})
        self.args = args
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.port = 0
        self.log_path = self.instance / f"server-{secrets.token_hex(3)}.log"

    @property
    def upload_path(self) -> Path:
        return Path(self.extra_env.get("WEBFRAME_UPLOAD_PATH", self.instance / "uploads"))

    @property
    def temp_dir(self) -> Path:
        return self.upload_path / ".tmp"

    def start(self, timeout: float = 20.0) -> ServerProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("WEBFRAME_")}
        env.update(
            {
                "WEBFRAME_COOKIE_SECRET": SECRET,
                "WEBFRAME_INSTANCE_PATH": str(self.instance),
                "WEBFRAME_ACCESS_LOG": "0",
                "PYTHONPATH": str(ROOT),
            }
        )
        if os.environ.get("WEBFRAME_REQUIRE_SERVICES"):
            env["WEBFRAME_REQUIRE_SERVICES"] = os.environ["WEBFRAME_REQUIRE_SERVICES"]
        env.update(self.extra_env)
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child
        try:
            self.proc = subprocess.Popen(
                [sys.executable, str(self.script), "--no-debug", "--port", "0", *self.args],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(r"serving on (http://127\.0\.0\.1:(\d+))/", self.log())
            if m:
                self.url, self.port = m.group(1), int(m.group(2))
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.kill()
        raise AssertionError(f"server did not start:\n{self.log()[-3000:]}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def cpu_seconds(self) -> float:
        """User + system CPU time the server process has used so far."""
        text = Path(f"/proc/{self.pid}/stat").read_text()
        fields = text[text.rindex(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def fd_count(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def terminate(self, timeout: float = 20.0) -> int:
        """SIGTERM and wait; the exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def tracebacks(self) -> list[str]:
        """Tracebacks in the server's log that are not expected error reports."""
        return [m for m in re.findall(r"Traceback[^\n]*\n(?:[ \t].*\n)*.*", self.log())]


class ThreadedServer:
    """A webframe Application served by webframe's own HTTPServer in a thread of this
    process (so tests can monkeypatch it) with real sockets on 127.0.0.1."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self._make = make
        self.port = 0
        self.app: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ThreadedServer:
        self._thread = threading.Thread(target=self._run, name="webframe-test-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(15):
            raise AssertionError("threaded server did not start")
        if self._error is not None:
            raise self._error
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(15)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # pragma: no cover - reported by __enter__
            self._error = exc
            self._ready.set()

    def listen(self, app: Any) -> tuple[Any, int]:
        """Start serving ``app`` (in the server's loop); the server and its port. Here
        webframe's own server on a free port; a subclass may serve it another way."""
        import tornado.netutil

        from webframe.cli import create_server

        server = create_server(app, app.wf_settings)
        sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
        server.add_sockets(sockets)
        return server, int(sockets[0].getsockname()[1])

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self.app = self._make()
        server, self.port = self.listen(self.app)
        self._ready.set()
        await self._stop.wait()
        server.stop()
        await server.close_all_connections()
        await self.app.aclose()


# --------------------------------------------------------------------- raw HTTP


@dataclass
class RawResponse:
    status: int | None
    headers: dict[str, str] = field(default_factory=dict)
    header_list: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    raw: bytes = b""
    elapsed: float = 0.0
    closed: bool = False  # the server closed the connection after the answer

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


def parse_head(head: bytes) -> tuple[int | None, list[tuple[str, str]]]:
    lines = head.decode("latin-1").split("\r\n")
    m = re.match(r"HTTP/1\.[01] (\d{3})", lines[0])
    status = int(m.group(1)) if m else None
    headers = []
    for line in lines[1:]:
        if ":" in line:
            name, _, value = line.partition(":")
            headers.append((name.strip().lower(), value.strip()))
    return status, headers


def read_response(sock: socket.socket, deadline: float, head_only: bool = False) -> RawResponse:
    """Read one HTTP response from ``sock`` (Content-Length, chunked or until close)."""
    buf = bytearray()
    closed = False

    def more() -> bool:
        nonlocal closed
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no complete answer in time")
        sock.settimeout(remaining)
        try:
            data = sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            data = b""
        if not data:
            closed = True
            return False
        buf.extend(data)
        return True

    while b"\r\n\r\n" not in buf:
        if not more():
            if not buf:
                return RawResponse(status=None, closed=True)
            status, hl = parse_head(bytes(buf))
            return RawResponse(status, dict(hl), hl, b"", bytes(buf), closed=True)
    end = buf.index(b"\r\n\r\n") + 4
    status, hl = parse_head(bytes(buf[:end]))
    headers = dict(hl)
    body_start = end
    if head_only or status in (204, 304):
        return RawResponse(status, headers, hl, b"", bytes(buf), closed=closed)
    if "content-length" in headers:
        want = body_start + int(headers["content-length"])
        while len(buf) < want and more():
            pass
        body = bytes(buf[body_start:want])
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        while not buf.endswith(b"0\r\n\r\n") and more():
            pass
        body = _dechunk(bytes(buf[body_start:]))
    else:
        while more():
            pass
        body = bytes(buf[body_start:])
    if headers.get("connection", "").lower() == "close":
        # Confirm the server really closes.
        try:
            sock.settimeout(max(0.01, min(2.0, deadline - time.monotonic())))
            closed = sock.recv(1) == b"" or closed
        except (TimeoutError, OSError):
            pass
    return RawResponse(status, headers, hl, body, bytes(buf), closed=closed)


class Conn:
    """One keep-alive client connection over a raw socket that reads pipelined answers
    one at a time (bytes of the next answer stay buffered for the next read)."""

    def __init__(self, port: int, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.timeout = timeout
        self.buf = bytearray()
        self.eof = False

    def __enter__(self) -> Conn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _more(self, deadline: float) -> bool:
        if self.eof:
            return False
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no complete answer in time")
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            data = b""
        if not data:
            self.eof = True
            return False
        self.buf.extend(data)
        return True

    def read(self, timeout: float | None = None) -> RawResponse | None:
        """The next answer, or None if the server closed the connection first."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while b"\r\n\r\n" not in self.buf:
            if not self._more(deadline):
                assert not self.buf, f"the server closed mid-answer: {bytes(self.buf)[:300]!r}"
                return None
        end = self.buf.index(b"\r\n\r\n") + 4
        status, hl = parse_head(bytes(self.buf[:end]))
        headers = dict(hl)
        if status in (204, 304) or 100 <= (status or 0) < 200:
            size = 0
        else:
            assert "content-length" in headers, f"answer without a length: {hl}"
            size = int(headers["content-length"])
        while len(self.buf) < end + size:
            assert self._more(deadline), "the server closed mid-body"
        raw = bytes(self.buf[: end + size])
        del self.buf[: end + size]
        return RawResponse(status, headers, hl, raw[end:], raw)

    def closed_by_server(self, timeout: float = 5.0) -> bool:
        """True once the server has closed its side with nothing more sent."""
        deadline = time.monotonic() + timeout
        while not self.eof:
            try:
                if not self._more(deadline):
                    break
            except TimeoutError:
                return False
        return self.eof and not self.buf


def _dechunk(data: bytes) -> bytes:
    out = bytearray()
    while data:
        line, _, rest = data.partition(b"\r\n")
        try:
            size = int(line.split(b";")[0], 16)
        except ValueError:
            break
        if size == 0:
            break
        out += rest[:size]
        data = rest[size + 2 :]
    return bytes(out)


def raw_request(
    port: int,
    data: bytes | Iterator[bytes],
    *,
    timeout: float = 20.0,
) -> RawResponse:
    """Send ``data`` (bytes or an iterator of chunks) and read one answer.

    The body is sent from a thread while the answer is read, so an early answer (413
    before the body is read) is seen; a server that stops reading is fine too.
    """
    started = time.monotonic()
    deadline = started + timeout
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        stop = threading.Event()

        def send() -> None:
            chunks = [data] if isinstance(data, bytes) else data
            try:
                for chunk in chunks:
                    if stop.is_set():
                        return
                    view = memoryview(chunk)
                    while view:
                        if stop.is_set():
                            return
                        n = sock.send(view[: 1 << 20])
                        view = view[n:]
            except OSError:
                pass

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        try:
            resp = read_response(sock, deadline)
        finally:
            stop.set()
        resp.elapsed = time.monotonic() - started
        sender.join(2)
        return resp


def request_bytes(
    method: str,
    path: str,
    headers: Mapping[str, str] | list[tuple[str, str]] = (),  # type: ignore[assignment]
    body: bytes = b"",
    *,
    content_length: bool = True,
) -> bytes:
    items = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
    names = {k.lower() for k, _ in items}
    if content_length and "content-length" not in names and "transfer-encoding" not in names:
        items.append(("Content-Length", str(len(body))))
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in items)
    return head.encode("latin-1") + b"\r\n" + body


# ---------------------------------------------------------------- demo accounts


@dataclass
class DemoUser:
    """A registered, logged-in demo user: requests session, cookies and XSRF token."""

    base: str
    name: str
    password: str
    http: requests.Session

    @property
    def xsrf(self) -> str:
        token = self.http.cookies.get("_xsrf")
        assert token, "no _xsrf cookie"
        return str(token)

    def cookie_header(self) -> str:
        return "; ".join(f"{c.name}={c.value}" for c in self.http.cookies)

    def auth_headers(self) -> dict[str, str]:
        return {"Cookie": self.cookie_header(), "X-XSRFToken": self.xsrf}

    def refresh_xsrf(self) -> None:
        r = self.http.get(self.base + "/files", timeout=10)
        assert r.status_code == 200, r.status_code


def register(base: str, name: str | None = None, password: str = "correct horse 1") -> DemoUser:
    name = name or "u" + secrets.token_hex(5)
    http = requests.Session()
    r = http.get(base + "/register", timeout=10)
    assert r.status_code == 200
    r = http.post(
        base + "/register",
        data={"_xsrf": http.cookies["_xsrf"], "username": name, "password": password},
        timeout=10,
        allow_redirects=False,
    )
    assert r.status_code == 302, (r.status_code, r.text[:300])
    user = DemoUser(base, name, password, http)
    user.refresh_xsrf()
    return user


# ------------------------------------------------------------------ the checks


class TornadoResponse:
    """A Tornado ``HTTPResponse`` seen through the shape ``assert_refused`` expects."""

    def __init__(self, r: Any) -> None:
        self.status_code = r.code
        self.text = r.body.decode("utf-8", "replace")


TRACEBACK_MARKERS = ("Traceback (most recent call last)", 'File "/')


def assert_refused(
    resp: RawResponse | requests.Response,
    statuses: int | tuple[int, ...],
    *,
    message: str | None = None,
) -> None:
    """A refusal: one of ``statuses``, a non-empty human message, and no traceback."""
    wanted = (statuses,) if isinstance(statuses, int) else statuses
    code = resp.status if isinstance(resp, RawResponse) else resp.status_code
    text = resp.text
    assert code in wanted, f"expected {wanted}, got {code}: {text[:500]!r}"
    for marker in TRACEBACK_MARKERS:
        assert marker not in text, f"traceback reached the client: {text[:2000]}"
    if code != 304 and code is not None:
        assert len(text.strip()) > 0, "the refusal carries no message"
    if message is not None:
        assert message.lower() in text.lower(), f"{message!r} not in {text[:800]!r}"


def assert_no_temp_files(folder: Path, wait: float = 3.0) -> None:
    """Nothing left in the upload temp folder (waits a little for async clean-up)."""
    deadline = time.monotonic() + wait
    left: list[str] = []
    while True:
        left = sorted(os.listdir(folder)) if folder.is_dir() else []
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert not left, f"temp files left behind in {folder}: {left[:10]}"


def assert_alive(base: str, timeout: float = 5.0) -> None:
    """The server still answers a normal page quickly."""
    started = time.monotonic()
    r = requests.get(base + "/about", timeout=timeout)
    assert r.status_code == 200, r.status_code
    assert time.monotonic() - started < timeout


def multipart_head(boundary: str) -> str:
    return f"multipart/form-data; boundary={boundary}"


def part(
    boundary: bytes,
    name: str,
    data: bytes,
    filename: str | None = None,
    ctype: str | None = None,
) -> bytes:
    disp = f'form-data; name="{name}"'
    if filename is not None:
        disp += f'; filename="{filename}"'
    head = b"--" + boundary + b"\r\nContent-Disposition: " + disp.encode("utf-8") + b"\r\n"
    if ctype:
        head += b"Content-Type: " + ctype.encode() + b"\r\n"
    return head + b"\r\n" + data + b"\r\n"


def closing(boundary: bytes) -> bytes:
    return b"--" + boundary + b"--\r\n"
