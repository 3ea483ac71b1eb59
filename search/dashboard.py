"""`nextsweep dashboard`: optuna-dashboard on a study storage, with a warning when it is reachable
from other machines."""

from __future__ import annotations

import ipaddress
import sys

from search.storage import open_storage
from search.url_redact import redact


def dashboard_warning(host: str, port: int = 8080) -> str | None:
    """The warning for a dashboard reachable from other machines: optuna-dashboard has no login."""
    try:
        loopback = host.lower() == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to any interface
        loopback = False
    if loopback:
        return None
    return (f"nextsweep: warning: --host {host}: the dashboard has no authentication; anyone who can reach "
            "the port can read and modify every study in this storage. Keep the default 127.0.0.1 and use "
            f"an SSH tunnel instead: ssh -L {port}:localhost:{port} head")


def run_dashboard(storage_url: str, host: str, port: int) -> None:
    """Serve optuna-dashboard on `host` (loopback by default) until interrupted."""
    import optuna_dashboard
    storage = open_storage(storage_url)
    warning = dashboard_warning(host, port)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    print(f"optuna-dashboard for {redact(storage_url)} at http://{host}:{port}/  (Ctrl-C to stop)", flush=True)
    optuna_dashboard.run_server(storage, host=host, port=port)
