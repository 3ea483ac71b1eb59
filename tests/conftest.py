from pathlib import Path

import pytest

GEOLIFE = Path(__file__).resolve().parents[2] / "shared" / "data" / "geolife"


@pytest.fixture(scope="session")
def geolife_files():
    if not (GEOLIFE / "dataSet_geolife.csv").is_file():
        pytest.skip(f"Geolife data not found at {GEOLIFE} (../shared/data/geolife beside the repo)")
    return GEOLIFE / "dataSet_geolife.csv", GEOLIFE / "valid_ids_geolife.csv"


@pytest.fixture(scope="session")
def geolife_dir(geolife_files, tmp_path_factory):
    from data_io.geolife import prepare_geolife
    out = tmp_path_factory.mktemp("geolife") / "ds"
    prepare_geolife(*geolife_files, out)
    return out


@pytest.fixture(scope="session")
def synth_dir(tmp_path_factory):
    from data_io.synthetic import SynthParams, synthesize
    out = tmp_path_factory.mktemp("synth") / "ds"
    synthesize(SynthParams(users=20, days=60, locations=120, seed=1), out)
    return out


# --- a real PostgreSQL server (Debian's package), started for the session -----------------
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}")) or ([shutil.which(name)] if shutil.which(name) else [])
    if not found:
        pytest.fail(f"PostgreSQL's {name} not found: install Debian's postgresql package (.ci/run does)")
    return found[-1]


def _as_postgres(cmd: list[str]) -> list[str]:
    """The server refuses to run as root: run it as the package's postgres user then."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@pytest.fixture(scope="session")
def postgres_url():
    """A throw-away PostgreSQL server on 127.0.0.1; yields a URL to an empty database."""
    root = tempfile.mkdtemp(prefix="nextsweep-pg-")
    data, port = os.path.join(root, "data"), free_port()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    subprocess.run(_as_postgres([_pg_bin("initdb"), "-D", data, "-U", "nextsweep", "--auth=trust", "-E", "UTF8"]),
                   check=True, capture_output=True)
    opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1"
    subprocess.run(_as_postgres([_pg_bin("pg_ctl"), "-D", data, "-o", opts, "-l", os.path.join(root, "log"), "-w", "start"]),
                   check=True, capture_output=True)
    try:
        subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(port), "-U", "nextsweep", "-d", "postgres", "-qc",
                        "CREATE DATABASE nextsweep"], check=True, capture_output=True)
        yield f"postgresql://nextsweep@127.0.0.1:{port}/nextsweep"
    finally:
        subprocess.run(_as_postgres([_pg_bin("pg_ctl"), "-D", data, "-m", "immediate", "stop"]), capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
