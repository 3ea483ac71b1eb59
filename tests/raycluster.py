"""A real multi-node Ray cluster on this machine (`ray start` head + workers on loopback), for the
cluster tests and bench/scale_cluster.py. Every node is started in its own process group with
--block and torn down by that group (never `ray stop`, never by name)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from pgserver import free_port
from ray._private.utils import get_ray_address_file

RAY = str(Path(sys.executable).with_name("ray"))
ENV = {**os.environ, "RAY_AUTH_MODE": "disabled"}


class Cluster:
    """Nodes by name ("node_head" first, then "node_w1"...), each declaring `cpus` CPUs and one unit
    of a custom resource named after it; torn down by process group."""

    def __init__(self, tmp: Path, cpus: int = 1, object_store_mb: int | None = None):
        self.tmp, self.port, self.cpus = tmp, free_port(), cpus
        self.extra = [f"--object-store-memory={object_store_mb * 2**20}"] if object_store_mb else []
        self.address = f"127.0.0.1:{self.port}"
        self.nodes: dict[str, subprocess.Popen] = {}

    def start(self, name: str, head: bool = False) -> None:
        args = ["--head", f"--port={self.port}", "--include-dashboard=false"] if head else [f"--address={self.address}"]
        log = open(self.tmp / f"{name}.log", "w")
        self.nodes[name] = subprocess.Popen(
            [RAY, "start", "--block", "--node-ip-address=127.0.0.1", f"--num-cpus={self.cpus}",
             f"--resources={json.dumps({name: 1})}", *self.extra, *args],
            stdout=log, stderr=subprocess.STDOUT, env=ENV, start_new_session=True)

    def node_ids(self) -> dict[str, str]:
        """Alive nodes by name (each node carries a custom resource named after it)."""
        code = ("import json, ray; ray.init(address='%s', log_to_driver=False); "
                "print(json.dumps({k: n['NodeID'] for n in ray.nodes() if n['Alive'] for k in n['Resources'] "
                "if k.startswith('node_')}))" % self.address)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=60)
        return json.loads(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 else {}

    def wait_nodes(self, n: int, timeout: float = 120) -> dict[str, str]:
        deadline = time.time() + timeout
        while time.time() < deadline:
            ids = self.node_ids()
            if len(ids) >= n:
                return ids
            time.sleep(2)
        raise AssertionError(f"cluster did not reach {n} nodes: " + "".join(
            (self.tmp / f"{k}.log").read_text()[-500:] for k in self.nodes))

    def kill(self, name: str) -> None:
        proc = self.nodes.pop(name)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(15)
                break
            except subprocess.TimeoutExpired:
                continue
        try:  # anything it left in its group
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def stop(self) -> None:
        for name in [k for k in self.nodes if k != "node_head"] + [k for k in self.nodes if k == "node_head"]:
            self.kill(name)
        self.forget_address()

    def forget_address(self) -> None:
        """`ray start --head` records its address, which a later plain ray.init() on this machine
        connects to; `ray stop` removes it, a head killed by its process group does not."""
        path = Path(get_ray_address_file(None))
        if path.exists() and path.read_text().strip().endswith(f":{self.port}"):
            path.unlink()

    def start_nodes(self, n: int) -> dict[str, str]:
        """The head and n - 1 workers, one at a time (two raylets registering at once time out here)."""
        self.start("node_head", head=True)
        ids = self.wait_nodes(1)
        for k in range(1, n):
            self.start(f"node_w{k}")
            ids = self.wait_nodes(k + 1)
        return ids
