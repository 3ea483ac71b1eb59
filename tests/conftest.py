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
@pytest.fixture(scope="session")
def postgres_url():
    """A throw-away PostgreSQL server on 127.0.0.1; yields a URL to an empty database."""
    from pgserver import PostgresMissing, postgres_server
    try:
        with postgres_server() as url:
            yield url
    except PostgresMissing as exc:
        pytest.fail(str(exc))
