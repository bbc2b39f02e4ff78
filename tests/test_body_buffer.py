"""Large streamed bodies read into one reused buffer (``reuses_body_buffer``).

UploadHandler takes its large bodies as one ``bytearray`` the socket is read
straight into; these tests check that the pieces really are that buffer, that
every byte still arrives (delimiters split across pieces, raw bodies, limits
crossed mid-stream, disconnects), and that the override is per request only.
"""

from __future__ import annotations

import http.client
import json
import socket
import time
from pathlib import Path
from typing import Any, ClassVar
from unittest import mock

from webframe.server import HTTPToolsConnection, framing, tornado_impl

from .support.uploads import BOUNDARY, BUF, BodyBufferCase, MiB, multipart, pattern, sha


class ReusedBufferTest(BodyBufferCase):
    """Buffer growth switched off (it starts at full size): piece edges are known."""

    def setUp(self) -> None:
        super().setUp()
        patcher = mock.patch.object(framing, "BODY_BUFFER_MIN", BUF)
        patcher.start()
        self.addCleanup(patcher.stop)

    def test_pieces_are_one_reused_bytearray(self) -> None:
        data = pattern(3 * BUF + 12345)
        body = multipart([("note", None, b"hello"), ("f", "big.bin", data)])
        code, out = self.send("/probe", body)
        assert code == 200, out
        assert out["files"] == [["big.bin", len(data), sha(data)]]
        assert out["fields"]["note"] == ["hello"]
        kinds = {kind for kind, _, _ in out["pieces"]}
        assert kinds == {"bytearray"}, out["pieces"]
        sizes = [n for _, n, _ in out["pieces"]]
        assert sum(sizes) == len(body)
        assert sizes[:-1] == [BUF] * (len(body) // BUF)
        assert sizes[-1] == len(body) - BUF * (len(body) // BUF)
        full_ids = {ident for _, n, ident in out["pieces"] if n == BUF}
        assert len(full_ids) == 1, "full pieces should all be the same reused buffer"

    def test_handler_without_opt_in_gets_bytes(self) -> None:
        data = pattern(2 * BUF + 7, seed=1)
        code, out = self.send("/probe-bytes", multipart([("f", "b.bin", data)]))
        assert code == 200, out
        assert out["files"] == [["b.bin", len(data), sha(data)]]
        assert {kind for kind, _, _ in out["pieces"]} == {"bytes"}

    def test_small_bodies_keep_tornados_path(self) -> None:
        data = pattern(300_000, seed=2)
        code, out = self.send("/probe", multipart([("f", "s.bin", data)]))
        assert code == 200, out
        assert out["files"] == [["s.bin", len(data), sha(data)]]
        assert {kind for kind, _, _ in out["pieces"]} == {"bytes"}

    def test_delimiters_split_across_pieces(self) -> None:
        # The closing delimiter "\r\n--boundary--" starts a few bytes before, at, or
        # after the end of the first piece; a second file's delimiter likewise at the
        # end of the second piece.
        head = multipart([("f", "a.bin", b"")]).split(b"\r\n--" + BOUNDARY.encode() + b"--")[0]
        for shift in (-len(BOUNDARY) - 3, -5, -1, 0, 1, 3):
            with self.subTest(shift=shift):
                first = pattern(BUF + shift - len(head), seed=shift + 100)
                second_head = (
                    f"\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; "
                    'name="g"; filename="b.bin"\r\n\r\n'
                )
                second = pattern(BUF - len(second_head), seed=shift + 200)
                body = multipart([("f", "a.bin", first), ("g", "b.bin", second)])
                delimiter = b"\r\n--" + BOUNDARY.encode()
                assert body.index(delimiter) == BUF + shift
                assert body.rindex(delimiter) == 2 * BUF + shift
                code, out = self.send("/probe", body)
                assert code == 200, out
                assert out["files"] == [
                    ["a.bin", len(first), sha(first)],
                    ["b.bin", len(second), sha(second)],
                ]
                assert out["pieces"][0][:2] == ["bytearray", BUF]

    def test_body_an_exact_multiple_of_the_buffer(self) -> None:
        head_len = len(multipart([("f", "x.bin", b"")]))
        data = pattern(2 * BUF - head_len, seed=3)
        body = multipart([("f", "x.bin", data)])
        assert len(body) == 2 * BUF
        code, out = self.send("/probe", body)
        assert code == 200, out
        assert out["files"] == [["x.bin", len(data), sha(data)]]
        assert [n for _, n, _ in out["pieces"]] == [BUF, BUF]

    def test_raw_put_body(self) -> None:
        data = pattern(int(2.5 * BUF), seed=4)
        code, out = self.send("/probe", data, method="PUT")
        assert code == 200, out
        assert out["files"][0][1:] == [len(data), sha(data)]
        assert {kind for kind, _, _ in out["pieces"]} == {"bytearray"}

    def test_fallback_without_tornado_internals(self) -> None:
        data = pattern(2 * BUF + 1, seed=5)
        # Neither layer can reuse a buffer: Tornado's reads (bytes pieces) are used.
        with (
            mock.patch.object(tornado_impl, "CAN_READ_INTO", False),
            mock.patch.object(HTTPToolsConnection, "reuse_body_buffer", lambda *a: False),
        ):
            code, out = self.send("/probe", multipart([("f", "fb.bin", data)]))
        assert code == 200, out
        assert out["files"] == [["fb.bin", len(data), sha(data)]]
        assert {kind for kind, _, _ in out["pieces"]} == {"bytes"}


class ReusedBufferConnectionTest(BodyBufferCase):
    def test_override_lasts_one_request_on_a_kept_alive_connection(self) -> None:
        headers = self.auth_headers("/probe")
        port = self.get_http_port()
        big = pattern(2 * BUF, seed=6)
        body = multipart([("f", "k.bin", big)])
        ctype = f"multipart/form-data; boundary={BOUNDARY}"

        def run() -> list[tuple[int, Any, Any]]:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
            results = []
            try:
                for path, payload in (
                    ("/probe", body),
                    ("/probe-bytes", body),
                    ("/probe", multipart([("f", "tiny.txt", b"tiny")])),
                ):
                    conn.request(
                        "POST",
                        path,
                        body=payload,
                        headers={**headers, "Content-Type": ctype, "Accept": "application/json"},
                    )
                    resp = conn.getresponse()
                    results.append((resp.status, json.loads(resp.read()), conn.sock))
            finally:
                conn.close()
            return results

        results = self.in_thread(run)
        assert [code for code, _, _ in results] == [200, 200, 200], results
        assert len({id(sock) for _, _, sock in results}) == 1, "connection was not kept alive"
        first, second, third = (out for _, out, _ in results)
        assert {k for k, _, _ in first["pieces"]} == {"bytearray"}
        assert {k for k, _, _ in second["pieces"]} == {"bytes"}
        assert first["files"] == second["files"] == [["k.bin", len(big), sha(big)]]
        assert third["files"] == [["tiny.txt", 4, sha(b"tiny")]]

    def test_limit_crossed_mid_stream_is_413_and_leaves_nothing(self) -> None:
        data = pattern(5 * MiB, seed=7)
        code, out = self.send("/small-files", multipart([("f", "huge.bin", data)]))
        assert code == 413, out
        assert "max_file_size" in out["error"]["message"]
        assert self.wait_until(lambda: not self.temp_files(), 2.0), self.temp_files()
        code, out = self.send("/probe", multipart([("f", "after.txt", b"after")]))
        assert code == 200, out

    def test_disconnect_mid_body_removes_temp_files(self) -> None:
        headers = self.auth_headers("/probe")
        data = pattern(8 * MiB, seed=8)
        body = multipart([("f", "cut.bin", data)])
        head = (
            f"POST /probe HTTP/1.1\r\nHost: x\r\nCookie: {headers['Cookie']}\r\n"
            f"X-XSRFToken: {headers['X-XSRFToken']}\r\nAccept: application/json\r\n"
            f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        sock = socket.create_connection(("127.0.0.1", self.get_http_port()))
        try:
            sock.sendall(head + body[: 3 * MiB + 17])
            assert self.wait_until(lambda: bool(self.temp_files()), 3.0), "no temp file was made"
        finally:
            sock.close()
        assert self.wait_until(lambda: not self.temp_files(), 2.0), self.temp_files()
        code, out = self.send("/probe", multipart([("f", "after.txt", b"after")]))
        assert code == 200, out

    def test_buffer_doubles_up_to_its_size_for_a_fast_client(self) -> None:
        data = pattern(6 * MiB, seed=9)
        body = multipart([("f", "fast.bin", data)])
        with mock.patch.object(framing, "FAST_FILL", 1e9):  # every fill counts as fast
            code, out = self.send("/probe", body)
        assert code == 200, out
        assert out["files"] == [["fast.bin", len(data), sha(data)]]
        sizes = [n for _, n, _ in out["pieces"]]
        start = framing.BODY_BUFFER_MIN
        growth = [start << k for k in range((BUF // start).bit_length())]
        assert sizes[: len(growth)] == growth, sizes
        assert set(sizes[len(growth) : -1]) == {BUF}
        assert sum(sizes) == len(body)
        assert len({i for _, n, i in out["pieces"] if n == BUF}) == 1

    def trickle(self, chunks: list[tuple[bytes, float]], declared: int) -> None:
        """Send headers, then each chunk followed by its pause; then hang up."""
        headers = self.auth_headers("/probe")
        head = (
            f"POST /probe HTTP/1.1\r\nHost: x\r\nCookie: {headers['Cookie']}\r\n"
            f"X-XSRFToken: {headers['X-XSRFToken']}\r\nAccept: application/json\r\n"
            f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
            f"Content-Length: {declared}\r\n\r\n"
        ).encode()

        def run() -> None:
            with socket.create_connection(("127.0.0.1", self.get_http_port())) as sock:
                sock.sendall(head)
                for data, pause in chunks:
                    sock.sendall(data)
                    time.sleep(pause)

        self.in_thread(run)

    def test_a_trickling_client_holds_the_small_buffer(self) -> None:
        body = multipart([("f", "slow.bin", pattern(4 * MiB, seed=10))])
        sent = body[: 160 * 1024]
        # 8 KiB every 20 ms: a 64 KiB fill takes ~160 ms, far over _FAST_FILL.
        self.trickle([(sent[i : i + 8192], 0.02) for i in range(0, len(sent), 8192)], len(body))
        sizes = [n for _, n, _ in self.record]
        assert sizes == [framing.BODY_BUFFER_MIN] * 2, sizes
        assert self.wait_until(lambda: not self.temp_files(), 2.0), self.temp_files()

    def test_a_stall_takes_the_buffer_back_to_its_minimum(self) -> None:
        body = multipart([("f", "stall.bin", pattern(8 * MiB, seed=11))])
        first = 3 * MiB + 5000  # the buffer grows while this part arrives at once
        second = first + 2 * MiB
        with (
            mock.patch.object(framing, "FAST_FILL", 0.3),
            mock.patch.object(framing, "SLOW_FILL", 0.5),
        ):
            self.trickle([(body[:first], 1.0), (body[first:second], 0.3)], len(body))
        sizes = [n for _, n, _ in self.record]
        assert max(sizes) > framing.BODY_BUFFER_MIN, sizes
        # Piece k was being filled during the stall; the one after it starts small again.
        total, k = 0, 0
        while total + sizes[k] <= first:
            total += sizes[k]
            k += 1
        assert sizes[k] > framing.BODY_BUFFER_MIN, sizes
        assert sizes[k + 1] == framing.BODY_BUFFER_MIN, sizes


def test_large_pieces_reach_the_temp_file_in_slices(tmp_path: Path) -> None:
    from webframe.uploads import tempfile as temp_files

    temp = temp_files.TempFile(tmp_path)
    real = temp._file
    assert real is not None
    sizes: list[int] = []

    class Recording:
        def write(self, data: bytes) -> int:
            sizes.append(len(data))
            return real.write(data)

        def close(self) -> None:
            real.close()

    temp._file = Recording()  # type: ignore[assignment]
    data = pattern(3 * temp_files.WRITE_SLICE + 5, seed=12)
    temp.write(memoryview(bytearray(data)))
    temp.write(b"tail")
    temp.close()
    slice_ = temp_files.WRITE_SLICE
    assert sizes == [slice_, slice_, slice_, 5, 4]
    assert temp.path.read_bytes() == data + b"tail"
    assert temp.hash is not None and temp.hash.hexdigest() == sha(data + b"tail")
    assert temp.size == len(data) + 4


class TornadoReusedBufferTest(ReusedBufferTest):
    """The reused buffer on Tornado's own HTTP1Connection (tornado_impl's reader)."""

    http_impl: ClassVar[str] = "tornado"


class TornadoReusedBufferConnectionTest(ReusedBufferConnectionTest):
    """The growth policy and the one-request override on Tornado's own layer."""

    http_impl: ClassVar[str] = "tornado"
