"""Start and stop a throw-away PostgreSQL server (Debian's package) on 127.0.0.1, for the tests
and the benchmarks. The server refuses to run as root, so as root it runs as `postgres`."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile


class PostgresMissing(RuntimeError):
    pass


_SERVERS: dict[str, list[str]] = {}  # url -> pg_ctl's command line up to start / stop


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise PostgresMissing(f"PostgreSQL's {name} not found: install Debian's postgresql package (.ci/run does)")
    return found[-1]


def _as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@contextlib.contextmanager
def postgres_server():
    """Yields postgresql://nextsweep@127.0.0.1:PORT/nextsweep; the data directory is deleted after."""
    initdb, pg_ctl = _bin("initdb"), _bin("pg_ctl")
    root = tempfile.mkdtemp(prefix="nextsweep-pg-")
    data, port = os.path.join(root, "data"), free_port()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    try:
        subprocess.run(_as_postgres([initdb, "-D", data, "-U", "nextsweep", "--auth=trust", "-E", "UTF8"]),
                       check=True, capture_output=True)
        opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c max_connections=200"
        subprocess.run(_as_postgres([pg_ctl, "-D", data, "-o", opts, "-l", os.path.join(root, "log"), "-w", "start"]),
                       check=True, capture_output=True)
        subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(port), "-U", "nextsweep", "-d", "postgres", "-qc",
                        "CREATE DATABASE nextsweep"], check=True, capture_output=True)
        url = f"postgresql://nextsweep@127.0.0.1:{port}/nextsweep"
        _SERVERS[url] = _as_postgres([pg_ctl, "-D", data, "-o", opts, "-l", os.path.join(root, "log"), "-w"])
        yield url
    finally:
        subprocess.run(_as_postgres([pg_ctl, "-D", data, "-m", "immediate", "stop"]), capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def restart(url: str, down_s: float) -> None:
    """Stop the server of `url` as an operator's restart does (fast: every connection is cut and
    its open transaction rolled back), leave it down `down_s` seconds, and start it again."""
    import time
    subprocess.run([*_SERVERS[url], "-m", "fast", "stop"], check=True, capture_output=True)
    time.sleep(down_s)
    subprocess.run([*_SERVERS[url], "start"], check=True, capture_output=True)
