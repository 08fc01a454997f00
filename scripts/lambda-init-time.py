"""Measures a Lambda function's init time: process start to its first handled event.

A minimal Lambda Runtime API on loopback hands the function one event and notes when its answer
arrives; the function runs as it would on Lambda (provided.al2023 starts `bootstrap` the same
way). Prints the median of N runs in milliseconds.

    python scripts/lambda-init-time.py BOOTSTRAP EVENT_JSON [--runs N] [--env NAME=VALUE ...]
"""

import argparse
import json
import os
import statistics
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def measure(bootstrap: str, event: bytes, env: dict) -> float:
    answered = threading.Event()

    class Runtime(BaseHTTPRequestHandler):
        served = False

        def do_GET(self):  # noqa: N802 - the Runtime API's verb
            if Runtime.served:
                # Later polls wait until the process is stopped.
                answered.wait(10)
                return
            Runtime.served = True
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Lambda-Runtime-Aws-Request-Id", "req-1")
            self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 60_000))
            self.send_header("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:f")
            self.send_header("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000")
            self.send_header("Content-Length", str(len(event)))
            self.end_headers()
            self.wfile.write(event)

        def do_POST(self):  # noqa: N802
            length = int(self.headers.get("Content-Length", 0))
            self.rfile.read(length)
            self.send_response(202)
            self.end_headers()
            answered.set()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Runtime)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    process_env = {
        "PATH": os.environ.get("PATH", ""),
        "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{server.server_address[1]}",
        "AWS_LAMBDA_FUNCTION_NAME": "f",
        "AWS_LAMBDA_FUNCTION_VERSION": "1",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        **env,
    }
    started = time.perf_counter()
    process = subprocess.Popen([bootstrap], env=process_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if not answered.wait(30):
        process.kill()
        raise SystemExit(f"{bootstrap} answered nothing within 30 s")
    elapsed = (time.perf_counter() - started) * 1000
    process.kill()
    process.wait()
    server.shutdown()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bootstrap")
    parser.add_argument("event")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--env", action="append", default=[])
    args = parser.parse_args()
    env = dict(item.split("=", 1) for item in args.env)
    event = json.dumps(json.loads(args.event)).encode()
    times = [measure(args.bootstrap, event, env) for _ in range(args.runs)]
    print(f"{statistics.median(times):.1f}")


if __name__ == "__main__":
    main()
