"""Secrets stay secret: the storage password never reaches argv, printed output, exported files or
the study; cluster.yaml runs Ray with token auth and PostgreSQL on localhost only; a dashboard
open to the network is announced with a warning."""

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import quote

import optuna
import pytest
import yaml

from pgserver import _as_postgres, _bin, free_port
from search.cli import main
from search.dashboard import dashboard_warning
from search.errors import SearchError
from search.storage import STORAGE_ENV, open_storage, storage_url
from search.url_redact import has_password, redact, scrub
from search.study_record import sweep_command
from search.sweep import SweepOptions

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "Pw-7f3a9c-hunter2"
# What a URL's userinfo may hold unescaped ('/', ' ', ':') besides '@' and '%' (escaped in the URL)
NASTY = "Sl4sh/Sp4ce Co1on:Atsgn@Pcnt%Endd"


def in_url(password: str) -> str:
    """The password as a user writes it in a URL: '@' and '%' escaped, '/', ' ' and ':' as they are."""
    return quote(password, safe="/ :")


def leaked(text: str, password: str) -> list[str]:
    """The pieces of `password` (runs of 4+ letters and digits) that `text` shows: a password cut
    at '/', ' ', ':' or '@' leaks in pieces."""
    return [piece for piece in re.findall(r"[A-Za-z0-9]{4,}", password) if piece in text]

SPACE = """
name: leak
data: {synthetic: {users: 8, days: 60, locations: 40, seed: 4}}
budget: {max_params: 15000}
asha: {max_epochs: 2, grace_period: 2}
params:
  family: gru
  d_model: {type: int, low: 16, high: 48, step: 8}
  lr: {type: float, low: 1.0e-3, high: 1.0e-2, log: true}
"""


@pytest.fixture(autouse=True)
def no_storage_env(monkeypatch):
    monkeypatch.delenv(STORAGE_ENV, raising=False)


def one_line(err: str) -> bool:
    return err.count("\n") == 1 and "Traceback" not in err


# --- redaction ------------------------------------------------------------------------------
@pytest.mark.parametrize("url, shown", [
    ("postgresql://u:secret@h:5432/db", "postgresql://u:***@h:5432/db"),
    ("postgresql+psycopg://u:se%40cret@h/db", "postgresql+psycopg://u:***@h/db"),
    ("postgresql://u:se@cret@h/db", "postgresql://u:***@h/db"),  # an unescaped '@' in the password
    ("postgresql://h/db?user=u&password=secret&sslmode=require", "postgresql://h/db?user=u&password=***&sslmode=require"),
    ("postgresql://h/db?PassWord=secret", "postgresql://h/db?PassWord=***"),
    ("mysql://u:secret@h/db?password=secret", "mysql://u:***@h/db?password=***"),
    ("postgresql://nobody@127.0.0.1:1/none", "postgresql://nobody@127.0.0.1:1/none"),
    ("postgresql://h:5432/db", "postgresql://h:5432/db"),
    ("sqlite:////tmp/runs/nextsweep.db", "sqlite:////tmp/runs/nextsweep.db"),
    ("storage postgresql://u:secret@h/db: cannot connect", "storage postgresql://u:***@h/db: cannot connect"),
    # what SQLAlchemy's make_url reads as the password: everything between "user:" and the '@'
    ("postgresql://u:ab/cd@h:5432/db", "postgresql://u:***@h:5432/db"),
    ("postgresql://u:a b c@h/db", "postgresql://u:***@h/db"),
    ("postgresql://u:p:q@h/db", "postgresql://u:***@h/db"),
    ("postgresql://u:p?q@h/db?sslmode=require", "postgresql://u:***@h/db?sslmode=require"),
    ("postgresql://u:%2F%20%3A%40%25@h/db", "postgresql://u:***@h/db"),
    ("postgresql://u:a/b@c@h/db", "postgresql://u:***@h/db"),  # unescaped '/' and '@'
    ("postgresql://u:a@b/c@h/db", "postgresql://u:***@h/db"),
    (f"postgresql://u:{in_url(NASTY)}@h:5432/db", "postgresql://u:***@h:5432/db"),
    ("postgresql://h/db?password=a/b c:d&sslmode=require", "postgresql://h/db?password=***&sslmode=require"),
    ("postgresql://h/db?password=a%26b%40c", "postgresql://h/db?password=***"),
    ("storage postgresql://u:ab/cd@h/db: cannot connect", "storage postgresql://u:***@h/db: cannot connect"),
    ("sqlite:////tmp/a:b@c/nextsweep.db", "sqlite:////tmp/a:b@c/nextsweep.db"),  # a path, no password
    ("postgresql://u@h:5432/db", "postgresql://u@h:5432/db"),
])
def test_redact_hides_every_password_form(url, shown):
    assert redact(url) == shown
    assert has_password(url) == (shown != url)


@pytest.mark.parametrize("password", ["abcd/efgh", "abcd efgh", "abcd:efgh", "abcd?efgh", "abcd/efgh@ijkl",
                                      "abcd@efgh/ijkl", NASTY])
def test_a_password_with_url_characters_is_warned_about_and_kept_out(password, capsys):
    """The paths a password goes through: the --storage warning, the error message, and the
    sweep's command line stored in the study (and shown by status, the report, the dashboard)."""
    url = f"postgresql://u:{in_url(password)}@127.0.0.1:1/db"
    assert main(["status", "--storage", url]) == 2
    err = capsys.readouterr().err
    assert "warning" in err and "--storage-file" in err, err
    assert not leaked(err, password) and "u:***@127.0.0.1:1/db" in err and "cannot connect" in err
    command = sweep_command(SweepOptions(space="space.yaml", storage=url, study="s"))
    assert not leaked(command, password) and command.endswith("--storage 'postgresql://u:***@127.0.0.1:1/db'")
    assert not leaked(scrub(f"FATAL: password {password!r} / {in_url(password)!r} rejected", url), password)


def test_scrub_removes_a_bare_password_from_a_driver_message():
    url = "postgresql://u:se%40cret@h/db?password=other"
    assert scrub("FATAL: bad password se@cret / se%40cret / other", url) == "FATAL: bad password *** / *** / ***"


# --- where the URL comes from ---------------------------------------------------------------
def test_storage_url_precedence(tmp_path):
    f = tmp_path / "url"
    f.write_text("postgresql://from-file/db\n")
    env = {STORAGE_ENV: "postgresql://from-env/db"}
    assert storage_url("postgresql://from-arg/db", str(f), tmp_path, env) == "postgresql://from-arg/db"
    assert storage_url(None, str(f), tmp_path, env) == "postgresql://from-file/db"
    assert storage_url(None, None, tmp_path, env) == "postgresql://from-env/db"
    assert storage_url(None, None, tmp_path, {}) == f"sqlite:///{(tmp_path / 'nextsweep.db').resolve()}"


@pytest.mark.parametrize("command", [["status"], ["export", "--out", "x"], ["dashboard"], ["sweep", "space.yaml"]])
@pytest.mark.parametrize("content", [None, "", "  \n"])
def test_missing_or_empty_storage_file_is_one_line_and_exit_2(tmp_path, capsys, command, content):
    f = tmp_path / "url"
    if content is not None:
        f.write_text(content)
    assert main([*command, "--storage-file", str(f), "--dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert one_line(err) and f"--storage-file {f}: " in err
    assert ("not found" if content is None else "is empty") in err
    assert not (tmp_path / "nextsweep.db").exists(), "no silent fall-back to SQLite"


def test_unreadable_storage_file_is_one_line_and_exit_2(tmp_path, capsys):
    assert main(["status", "--storage-file", str(tmp_path)]) == 2  # a directory
    err = capsys.readouterr().err
    assert one_line(err) and "cannot be read" in err


def test_empty_environment_variable_is_an_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(STORAGE_ENV, "")
    assert main(["status", "--dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert one_line(err) and STORAGE_ENV in err


def test_password_on_the_command_line_is_warned_about_and_not_printed(capsys):
    assert main(["status", "--storage", f"postgresql://u:{PASSWORD}@127.0.0.1:1/db"]) == 2
    err = capsys.readouterr().err
    assert PASSWORD not in err
    assert "warning" in err and "--storage-file" in err and STORAGE_ENV in err
    assert "u:***@127.0.0.1:1/db" in err and "cannot connect" in err


def test_help_documents_the_precedence(capsys):
    for command in ("sweep", "status", "export", "dashboard"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        out = " ".join(capsys.readouterr().out.split())
        assert "--storage-file PATH" in out and f"Precedence: --storage, --storage-file, ${STORAGE_ENV}" in out


# --- a real PostgreSQL server whose role has a password --------------------------------------
@contextlib.contextmanager
def password_server(password: str):
    """Like pgserver.postgres_server, but TCP logins need the password (scram-sha-256)."""
    initdb, pg_ctl = _bin("initdb"), _bin("pg_ctl")
    root = tempfile.mkdtemp(prefix="nextsweep-pgpw-")
    data, port, pwfile = os.path.join(root, "data"), free_port(), os.path.join(root, "pw")
    Path(pwfile).write_text(password + "\n")
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
        shutil.chown(pwfile, "postgres", "postgres")
    try:
        subprocess.run(_as_postgres([initdb, "-D", data, "-U", "nextsweep", "--auth-local=trust",
                                     "--auth-host=scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8"]),
                       check=True, capture_output=True)
        opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1"
        subprocess.run(_as_postgres([pg_ctl, "-D", data, "-o", opts, "-l", os.path.join(root, "log"), "-w", "start"]),
                       check=True, capture_output=True)
        subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(port), "-U", "nextsweep", "-d", "postgres", "-qc",
                        "CREATE DATABASE nextsweep"], check=True, capture_output=True,
                       env={**os.environ, "PGPASSWORD": password})
        yield port
    finally:
        subprocess.run(_as_postgres([pg_ctl, "-D", data, "-m", "immediate", "stop"]), capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def make_study(url: str, space_file: Path) -> None:
    """A study as a finished sweep leaves it: the sweep's study and trial attributes, one COMPLETE trial."""
    study = optuna.create_study(study_name="leak", storage=url, direction="maximize")
    for key, value in {"space_name": "leak", "space_file": str(space_file), "budget": 15000,
                       "data": {"synthetic": {"users": 8, "days": 60, "locations": 40, "seed": 4}},
                       "metric": "val_hit5", "samples": 1}.items():
        study.set_user_attr(key, value)
    config = {"family": "gru", "d_model": 24, "lr": 0.004, "seed": 0, "metric": "val_hit5", "max_epochs": 2}
    study.add_trial(optuna.trial.create_trial(
        params={"lr": 0.004}, distributions={"lr": optuna.distributions.FloatDistribution(1e-3, 1e-2, log=True)},
        value=0.31, user_attrs={"config": json.dumps(config), "n_params": 9876, "d_model": 24, "best_epoch": 2,
                                "best_metrics": {"val_hit5": 0.31}, "code_version": "0.1.0+abc", "cpus": 1.0,
                                "cpu_s": 12.0, "ray_trial_id": "abc_00000", "fingerprint": "f" * 64}))


@pytest.fixture(scope="module", params=[PASSWORD, NASTY], ids=["plain", "url-characters"])
def pg(tmp_path_factory, request):
    """A server whose role needs `password`: the URL with it in user:pass@ form (`userinfo`), the
    same with ?password= (`query`), a folder (`tmp`)."""
    tmp, password = tmp_path_factory.mktemp("secrets"), request.param
    with password_server(password) as port:
        userinfo = f"postgresql://nextsweep:{in_url(password)}@127.0.0.1:{port}/nextsweep"
        query = f"postgresql://nextsweep@127.0.0.1:{port}/nextsweep?password={in_url(password)}"
        (tmp / "space.yaml").write_text(SPACE)
        make_study(userinfo, tmp / "space.yaml")
        yield SimpleNamespace(userinfo=userinfo, query=query, tmp=tmp, password=password)


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != STORAGE_ENV} | (env or {})
    return subprocess.run([sys.executable, "-m", "search.cli", *args], capture_output=True, text=True,
                          timeout=120, cwd=ROOT, env=env)


def url_file(tmp: Path, url: str) -> Path:
    f = tmp / "pg_url"
    f.write_text(url + "\n")
    f.chmod(0o600)
    return f


@pytest.mark.postgres
def test_the_role_really_needs_its_password(pg, capsys):
    with pytest.raises(SearchError) as err:
        open_storage(pg.userinfo.replace(in_url(pg.password), "wrong-guess-31337"))
    assert "cannot connect" in str(err.value) and "wrong-guess-31337" not in str(err.value)


@pytest.mark.postgres
@pytest.mark.slow
def test_sweep_resume_from_a_storage_file_keeps_the_password_out(pg):
    """The real sweep code path (resume with nothing left to run: no Ray), its URL from a file."""
    tmp = pg.tmp
    f = url_file(tmp, pg.userinfo)
    args = ["sweep", str(tmp / "space.yaml"), "--storage-file", str(f), "--study", "leak", "--resume",
            "--samples", "1", "--dir", str(tmp / "runs")]
    assert not leaked(" ".join(args), pg.password)
    r = cli(*args)
    assert r.returncode == 0, r.stdout + r.stderr
    assert not leaked(r.stdout + r.stderr, pg.password)
    assert "nextsweep:***@127.0.0.1" in r.stdout and "1 complete" in r.stdout
    study = optuna.load_study(study_name="leak", storage=pg.userinfo)
    assert study.user_attrs["fingerprint"], "the sweep recorded its study attributes"
    assert "nextsweep:***@127.0.0.1" in study.user_attrs["command"]
    system = study._storage.get_study_system_attrs(study._study_id)  # the dashboard's note is kept there
    assert any("nextsweep:***@127.0.0.1" in json.dumps(v) for v in system.values()), system
    stored = json.dumps([study.user_attrs, system] + [t.user_attrs for t in study.get_trials()])
    assert not leaked(stored, pg.password)


@pytest.mark.postgres
def test_status_from_the_environment_keeps_the_password_out(pg):
    r = cli("status", "--study", "leak", env={STORAGE_ENV: pg.query})
    assert r.returncode == 0, r.stdout + r.stderr
    assert not leaked(r.stdout + r.stderr, pg.password)
    assert "leak" in r.stdout and "password=***" in r.stdout and "1 complete" in r.stdout


@pytest.mark.postgres
def test_export_from_a_storage_file_keeps_the_password_out(pg):
    out = pg.tmp / "exports"
    r = cli("export", "--storage-file", str(url_file(pg.tmp, pg.userinfo)), "--study", "leak", "--out", str(out))
    assert r.returncode == 0, r.stdout + r.stderr
    assert not leaked(r.stdout + r.stderr, pg.password)
    files = list(out.glob("*.yaml"))
    assert len(files) == 1 and not leaked(files[0].read_text(), pg.password)
    assert yaml.safe_load(files[0].read_text())["storage"] == redact(pg.userinfo) != pg.userinfo


@pytest.mark.postgres
def test_report_from_a_storage_file_keeps_the_password_out(pg):
    out = pg.tmp / "report.html"
    r = cli("report", "--storage-file", str(url_file(pg.tmp, pg.userinfo)), "--study", "leak", "--out", str(out))
    assert r.returncode == 0, r.stdout + r.stderr
    page = out.read_text()
    assert not leaked(r.stdout + r.stderr + page, pg.password)
    assert "nextsweep:***@127.0.0.1" in page


@pytest.mark.postgres
def test_a_running_dashboard_has_no_password_in_its_command_line(pg):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != STORAGE_ENV} | {STORAGE_ENV: pg.query}
    proc = subprocess.Popen([sys.executable, "-m", "search.cli", "dashboard", "--port", str(port)], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 60
        while True:  # the server answers: the process is the dashboard, connected with the password
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=2).read()
                break
            except OSError:
                assert proc.poll() is None and time.time() < deadline, "dashboard did not start"
                time.sleep(0.5)
        assert b'"leak"' in body
        # what ps shows, and what Ray records as a driver's job entrypoint (psutil's cmdline)
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().decode()
        assert "dashboard" in cmdline and not leaked(cmdline, pg.password)
    finally:
        proc.terminate()
        output = proc.communicate(timeout=10)[0]
    assert not leaked(output, pg.password) and "password=***" in output


# --- cluster.yaml -------------------------------------------------------------------------
def cluster_commands() -> dict[str, list[str]]:
    config = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    found = {k: v for k, v in config.items() if k.endswith("_commands")}
    for name, node in config["available_node_types"].items():
        found |= {f"{name}.{k}": v for k, v in node.items() if k.endswith("_commands")}
    return found


def test_cluster_runs_ray_with_token_auth_everywhere():
    commands = [c for cmds in cluster_commands().values() for c in cmds]
    assert not any(re.search(r"RAY_AUTH_MODE=\"?disabled", c) for c in commands)
    starts = [c for c in commands if "ray start" in c]
    assert any("--head" in c for c in starts) and any("--address" in c for c in starts)
    assert all("RAY_AUTH_MODE=token ray start" in c for c in starts), starts
    # the driver (ray exec / attach source ~/.bashrc) runs with token auth too
    assert any("export RAY_AUTH_MODE=token" in c and ".bashrc" in c for c in cluster_commands()["setup_commands"])
    # every node gets the same token where Ray looks for it by default
    mounts = yaml.safe_load((ROOT / "cluster.yaml").read_text())["file_mounts"]
    assert mounts.get("~/.ray/auth_token") == "~/.ray/auth_token"


def test_cluster_postgres_is_bound_to_localhost_only():
    text = " ".join(cluster_commands()["head_setup_commands"]).replace("\\n", " ")  # printf's line breaks
    assert re.findall(r"listen_addresses\s*=\s*'([^']*)'", text) == ["localhost"]
    hba = re.findall(r"\bhost\s+\S+\s+\S+\s+(\S+/\d+)", text)  # every pg_hba line it adds, by its CIDR
    assert sorted(hba) == ["127.0.0.1/32", "::1/128"]
    assert "10.0.0.0/8" not in text and "hostname -I" not in text
    assert not re.search(r"psql[^|;]*-\w*c\s*\"[^\"]*PASSWORD", text), "a password in psql's argv shows in ps"


# --- the dashboard's host ---------------------------------------------------------------
@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.5", "localhost", "LOCALHOST", "::1"])
def test_no_warning_on_loopback(host):
    assert dashboard_warning(host) is None


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "192.168.0.7", "head.example.com", ""])
def test_warning_when_the_dashboard_is_reachable_from_elsewhere(host):
    warning = dashboard_warning(host, 8081)
    assert warning and "no authentication" in warning and "every study" in warning
    assert "ssh -L 8081:localhost:8081" in warning


def test_dashboard_command_prints_the_warning_on_stderr(tmp_path, capsys, monkeypatch):
    import optuna_dashboard
    served = []
    monkeypatch.setattr(optuna_dashboard, "run_server", lambda storage, host, port: served.append(host))
    assert main(["dashboard", "--dir", str(tmp_path), "--host", "0.0.0.0"]) == 0
    assert "warning" in capsys.readouterr().err
    assert main(["dashboard", "--dir", str(tmp_path)]) == 0
    assert capsys.readouterr().err == ""
    assert served == ["0.0.0.0", "127.0.0.1"]
