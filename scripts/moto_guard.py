#!/usr/bin/env python3
"""Run a moto server on 127.0.0.1 for exactly as long as whoever started us is alive.

Protocol (what tests/it/support and scripts/demo.sh rely on):
  * stdout gets exactly one line, ``MOTO_PORT=<port>``, once the server answers HTTP;
  * the server then runs until stdin reaches EOF, or SIGTERM/SIGINT arrives;
  * then it is stopped and the process exits 0.

Tying the lifetime to stdin is what makes cleanup reliable: the parent keeps the write
end of our stdin pipe open and never writes to it. When the parent exits for any reason,
kill -9 included, the kernel closes that end, our read returns EOF and we shut down.

One fidelity fix: DynamoDB requests are served one at a time. Real DynamoDB applies every update
expression atomically and isolates transactions; moto does neither. Its threaded server evaluates
``SET n = n + :one`` as a Python read-modify-write, so concurrent updates of one item lose increments,
and a cancelled TransactWriteItems restores a deep copy of the whole table, undoing writes that other
requests made meanwhile. S3, SQS (whose long polls block) and the rest stay concurrent.
"""

import argparse
import logging
import os
import signal
import sys
import threading
import time
import urllib.error
import urllib.request


class _Stop(Exception):
    pass


def _on_signal(signum, _frame):
    raise _Stop(signum)


def _wait_until_answering(port: int, timeout_s: float = 30.0) -> None:
    """Bounded poll: any HTTP response (even an error status) means the server is up."""
    deadline = time.monotonic() + timeout_s
    url = f"http://127.0.0.1:{port}/moto-api/"
    last_error = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                resp.read()
            return
        except urllib.error.HTTPError:
            return
        except OSError as e:  # connection refused, reset, timeout
            last_error = e
            time.sleep(0.05)
    raise RuntimeError(f"moto did not answer on 127.0.0.1:{port} within {timeout_s}s: {last_error}")


def _serialize_dynamodb() -> None:
    """Serve DynamoDB requests (``X-Amz-Target: DynamoDB_20120810.*``) under one lock."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    lock = threading.Lock()
    dispatch = DomainDispatcherApplication.__call__

    def serialized(self, environ, start_response):
        if environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB_"):
            with lock:
                # moto's Flask views build the whole response body inside this call.
                return dispatch(self, environ, start_response)
        return dispatch(self, environ, start_response)

    DomainDispatcherApplication.__call__ = serialized


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=0, help="fixed port (default: a free one)")
    args = parser.parse_args()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)

    # werkzeug logs every request on stderr; tests make thousands of requests.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)

    from moto.server import ThreadedMotoServer

    _serialize_dynamodb()

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=args.port, verbose=False)
    server.start()
    try:
        _, port = server.get_host_and_port()
        _wait_until_answering(port)

        sys.stdout.write(f"MOTO_PORT={port}\n")
        sys.stdout.flush()
        # Nothing else may go to stdout: the reader may have closed it already.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)

        stdin = sys.stdin.buffer
        while stdin.read(65536):
            pass  # we never expect input; discard it and keep waiting for EOF
    except _Stop:
        pass
    finally:
        # Ignore further signals while shutting down so a second SIGTERM can't skip stop().
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
