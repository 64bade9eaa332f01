"""moto's threaded S3 (and KMS) server on 127.0.0.1, shared by the bench and the tests' fixtures."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator


@contextlib.contextmanager
def moto_server(credential: str, **extra_env: str) -> Iterator[dict[str, str]]:
    """Start the server; its endpoint and `credential` as the AWS keys are in os.environ until exit.

    Yields the variables set (with `extra_env`), for child processes; the
    previous values are put back and the server stopped on exit.
    """
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": credential,
           "AWS_SECRET_ACCESS_KEY": credential, "AWS_DEFAULT_REGION": "us-east-1", **extra_env}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield env
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        server.stop()
