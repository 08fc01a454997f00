"""The local AWS emulator for Orderly's tests: moto in server mode, one request at a time.

moto keeps its state in Python objects without locks, so two concurrent conditional writes to
one DynamoDB item can both pass their condition. Real DynamoDB applies each item's condition
atomically; serialising requests here gives the tests the same guarantee.

    python scripts/aws-emulator.py --port 5005
"""

import argparse
import threading

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import run_simple


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5005)
    args = parser.parse_args()

    moto = DomainDispatcherApplication(create_backend_app)
    lock = threading.Lock()

    def app(environ, start_response):
        with lock:
            # Consume the response inside the lock: moto may work while it is iterated.
            return list(moto(environ, start_response))

    run_simple(
        args.host,
        args.port,
        app,
        threaded=True,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main()
