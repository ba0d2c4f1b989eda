"""A gRPC backend for the tests (python3-grpcio from Debian), over h2c.

    /usr/bin/python3 grpc_backend.py PORT EVENTS_FILE

Service `h2x.Test`; every message is raw bytes (no protobuf), so a test
can send and check exact payloads:

  Echo     unary: the request comes back as it was
  Fail     unary: aborts with the status named by the request,
           "CODE:details" (for instance b"NOT_FOUND:gone")
  Big      unary: answers with N bytes ("r" repeated), N = int(request)
  Zip      unary: the request comes back, gzip-compressed on the wire
  Sleep    unary: sleeps int(request) ms, then answers b"slept"
  Meta     unary: initial metadata x-h2x-initial: hello, trailing metadata
           x-h2x-trailer: bye, and the request's x-h2x-ask metadata as
           the answer
  Count    client streaming: answers "<messages> <bytes> <sha256 of all>"
  Reject   client streaming: reads one message, then aborts with
           FAILED_PRECONDITION "enough" while the client still sends
  Split    server streaming: request "COUNT SIZE [CODE:details]": COUNT
           messages of SIZE bytes, message i filled with the byte i % 251,
           then the status (OK or the one given)
  Drip     server streaming: request "TAG": a 16-byte message every 50 ms
           for up to 60 s
  Chat     bidi streaming: every message comes back at once

When a call ends (however it ends), "ended <method> <tag> <active>
<monotonic time>" is appended to EVENTS_FILE, tag being the request (or
"-" for streaming requests) and active whether the client was still
there; a test sees from it how soon a client's cancel reached the backend.
"""

import hashlib
import sys
import threading
import time
from concurrent import futures

import grpc

EVENTS = None
_events_lock = threading.Lock()


def _record(method: str, tag: str, context) -> None:
    line = f"ended {method} {tag} {int(context.is_active())} {time.monotonic():.6f}\n"
    with _events_lock:
        with open(EVENTS, "a") as f:
            f.write(line)


def _watch(method: str, tag: str, context) -> None:
    context.add_callback(lambda: _record(method, tag, context))


def echo(request, context):
    return request


def fail(request, context):
    code, _, details = request.decode().partition(":")
    context.abort(getattr(grpc.StatusCode, code), details)


def zip_echo(request, context):
    context.set_compression(grpc.Compression.Gzip)
    return request


def big(request, context):
    return b"r" * int(request)


def sleep(request, context):
    _watch("Sleep", request.decode(), context)
    time.sleep(int(request) / 1000.0)
    return b"slept"


def meta(request, context):
    context.send_initial_metadata((("x-h2x-initial", "hello"),))
    context.set_trailing_metadata((("x-h2x-trailer", "bye"),))
    asked = dict(context.invocation_metadata()).get("x-h2x-ask", "")
    return asked.encode()


def count(requests, context):
    digest = hashlib.sha256()
    messages = total = 0
    for message in requests:
        messages += 1
        total += len(message)
        digest.update(message)
    return f"{messages} {total} {digest.hexdigest()}".encode()


def reject(requests, context):
    next(requests)
    context.abort(grpc.StatusCode.FAILED_PRECONDITION, "enough")


def split(request, context):
    parts = request.decode().split()
    n, size = int(parts[0]), int(parts[1])
    for i in range(n):
        yield bytes([i % 251]) * size
    if len(parts) > 2:
        code, _, details = parts[2].partition(":")
        context.abort(getattr(grpc.StatusCode, code), details)


def drip(request, context):
    _watch("Drip", request.decode(), context)
    deadline = time.monotonic() + 60
    i = 0
    while context.is_active() and time.monotonic() < deadline:
        yield b"%016d" % i
        i += 1
        time.sleep(0.05)


def chat(requests, context):
    for message in requests:
        yield message


HANDLERS = {
    "Echo": grpc.unary_unary_rpc_method_handler(echo),
    "Fail": grpc.unary_unary_rpc_method_handler(fail),
    "Big": grpc.unary_unary_rpc_method_handler(big),
    "Zip": grpc.unary_unary_rpc_method_handler(zip_echo),
    "Sleep": grpc.unary_unary_rpc_method_handler(sleep),
    "Meta": grpc.unary_unary_rpc_method_handler(meta),
    "Count": grpc.stream_unary_rpc_method_handler(count),
    "Reject": grpc.stream_unary_rpc_method_handler(reject),
    "Split": grpc.unary_stream_rpc_method_handler(split),
    "Drip": grpc.unary_stream_rpc_method_handler(drip),
    "Chat": grpc.stream_stream_rpc_method_handler(chat),
}

OPTIONS = [("grpc.max_send_message_length", 64 << 20),
           ("grpc.max_receive_message_length", 64 << 20)]


def main(port: int) -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=64), options=OPTIONS,
                         maximum_concurrent_rpcs=None)
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("h2x.Test", HANDLERS),))
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    print("ready", flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    EVENTS = sys.argv[2]
    main(int(sys.argv[1]))
