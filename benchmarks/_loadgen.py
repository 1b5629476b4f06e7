"""How many requests per second the benchmark's backend can answer (its capacity).

    python benchmarks/_loadgen.py PORT [--seconds S] [--depth D]

A raw socket, keep-alive, `D` requests pipelined at a time: the client does almost
nothing per request (every answer has a fixed size), so the figure is the server's. Prints
one JSON line: requests/second for a completion and for a 34-chunk stream.
"""

from __future__ import annotations

import argparse
import json
import socket
import time


def _request(port: int, stream: bool) -> bytes:
    body = (
        b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello."}],'
        b'"temperature":0.2' + (b',"stream":true}' if stream else b"}")
    )
    return (
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1:%d\r\n"
        b"content-type: application/json\r\nauthorization: Bearer sk-bench\r\n"
        b"content-length: %d\r\n\r\n%s" % (port, len(body), body)
    )


def _answer_size(sock: socket.socket, request: bytes) -> int:
    """The byte size of one answer (they are all the same), read with a timeout."""
    sock.sendall(request)
    sock.settimeout(0.5)
    data = b""
    try:
        while True:
            part = sock.recv(1 << 20)
            if not part:
                break
            data += part
    except TimeoutError:
        pass
    sock.settimeout(None)
    return len(data)


def measure(port: int, stream: bool, seconds: float, depth: int) -> float:
    request = _request(port, stream)
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        size = _answer_size(sock, request)
        burst = request * depth
        want = size * depth
        done = 0
        started = time.perf_counter()
        deadline = started + seconds
        while time.perf_counter() < deadline:
            sock.sendall(burst)
            got = 0
            while got < want:
                part = sock.recv(1 << 20)
                if not part:
                    raise ConnectionError("server closed the connection")
                got += len(part)
            done += depth
        return done / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--depth", type=int, default=32)
    args = parser.parse_args()
    result = {
        "call_rps": measure(args.port, False, args.seconds, args.depth),
        "stream_rps": measure(args.port, True, args.seconds, args.depth),
        "depth": args.depth,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
