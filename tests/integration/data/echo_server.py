"""A tiny HTTP server for the sandbox's runtime and gateway tests: answers with its identity.

Usage: echo_server.py PORT NAME. With GROW_MB set it allocates that much memory at start (to
trip a memory limit); with CRASH_AFTER=N it kills itself with SIGSEGV on the N-th request.
"""

import itertools
import os
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT, NAME = int(sys.argv[1]), sys.argv[2]
BALLAST = bytearray(int(os.environ.get("GROW_MB", "0")) * 2**20)
for i in range(0, len(BALLAST), 4096):  # touch every page so it counts as resident
    BALLAST[i] = 1
CRASH_AFTER = int(os.environ.get("CRASH_AFTER", "0"))
served = itertools.count(1)


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if CRASH_AFTER and next(served) >= CRASH_AFTER:
            os.kill(os.getpid(), signal.SIGSEGV)
        body = NAME.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
