#!/usr/bin/env python3
"""Run a moto server on 127.0.0.1 for exactly as long as whoever started us is alive.

Protocol (what tests/it/support and scripts/demo.sh rely on):
  * stdout gets exactly one line, ``MOTO_PORT=<port>``, once the server answers HTTP;
  * the server then runs until stdin reaches EOF, or SIGTERM/SIGINT arrives;
  * then it is stopped and the process exits 0.

Tying the lifetime to stdin is what makes cleanup reliable: the parent keeps the write
end of our stdin pipe open and never writes to it. When the parent exits for any reason,
kill -9 included, the kernel closes that end, our read returns EOF and we shut down.

With ``--lambda-url URL`` it also starts a Lambda router and points moto's Step Functions at it. moto
runs a state machine's Lambda tasks as Invoke calls to ``http://localhost:$MOTO_PORT``; the router takes
that port and sends ``POST /2015-03-31/functions/<name or ARN>/invocations`` to URL (``cargo lambda
watch``) under the bare function name (the last part of an ARN), and everything else to moto. A function
error that the emulator returns as HTTP 4xx/5xx with an ``errorType`` becomes what Lambda's Invoke API
returns: status 200 with ``X-Amz-Function-Error: Unhandled``, so ``Retry``/``Catch`` see the errorType.

One fidelity fix: DynamoDB requests are served one at a time. Real DynamoDB applies every update
expression atomically and isolates transactions; moto does neither. Its threaded server evaluates
``SET n = n + :one`` as a Python read-modify-write, so concurrent updates of one item lose increments,
and a cancelled TransactWriteItems restores a deep copy of the whole table, undoing writes that other
requests made meanwhile. S3, SQS (whose long polls block) and the rest stay concurrent.
"""

import argparse
import http.client
import http.server
import json
import logging
import re
import os
import signal
import sys
import threading
import time
import urllib.error
import urllib.parse
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


_INVOKE = re.compile(r"^/2015-03-31/functions/([^/]+)/invocations(\?.*)?$")
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailers", "upgrade", "content-length"}


def _start_lambda_router(moto_port: int, lambda_url: str) -> int:
    """Serve the Lambda router on a free port; returns the port."""
    target = urllib.parse.urlsplit(lambda_url)

    class Router(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_args):
            pass

        def _forward(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            invoke = _INVOKE.match(self.path) if self.command == "POST" else None
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
            if invoke:
                name = urllib.parse.unquote(invoke.group(1))
                if name.startswith("arn:"):
                    # arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]
                    name = name.split(":")[6]
                host, port, path = target.hostname, target.port, f"/2015-03-31/functions/{name}/invocations"
            else:
                host, port, path = "127.0.0.1", moto_port, self.path
            conn = http.client.HTTPConnection(host, port, timeout=900)
            try:
                conn.request(self.command, path, body=body, headers=headers)
                resp = conn.getresponse()
                status, data = resp.status, resp.read()
                out_headers = [(k, v) for k, v in resp.getheaders() if k.lower() not in _HOP_BY_HOP]
            except OSError as e:
                status, out_headers = 502, [("Content-Type", "application/json")]
                data = json.dumps({"message": f"lambda router: {host}:{port} unreachable: {e}"}).encode()
            finally:
                conn.close()
            if invoke and status >= 400:
                try:
                    function_error = "errorType" in json.loads(data)
                except ValueError:
                    function_error = False
                if function_error:
                    status = 200
                    out_headers = [(k, v) for k, v in out_headers if k.lower() != "x-amz-function-error"]
                    out_headers.append(("X-Amz-Function-Error", "Unhandled"))
            self.send_response(status)
            for k, v in out_headers:
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _forward

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Router)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server.server_address[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=0, help="fixed port (default: a free one)")
    parser.add_argument(
        "--lambda-url",
        help="serve Step Functions' Lambda invocations from this Invoke API endpoint (cargo lambda watch)",
    )
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
        if args.lambda_url:
            # Read by moto's Step Functions interpreter for every task it runs.
            os.environ["MOTO_PORT"] = str(_start_lambda_router(port, args.lambda_url))

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
