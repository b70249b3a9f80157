"""The Definitions load, and Dagster's selection grammar parses (an antlr4 downgrade breaks it)."""

import dagster as dg

from orchestration.definitions import defs
from tests.conftest import REPO, STAGES

CHAIN = set(STAGES)


def test_definitions_load():
    dg.Definitions.validate_loadable(defs)
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert keys == CHAIN
    job = defs.resolve_job_def("roost_chain")  # raises if missing
    assert {k.to_user_string() for k in job.asset_layer.selected_asset_keys} == CHAIN  # the whole chain


def test_asset_selection_strings_parse():
    # dagster's selection parser needs antlr4-python3-runtime 4.13; under dvc's 4.9 pin these
    # raise "ord() expected string of length 1" (dagster-io/dagster#27487).
    graph = defs.resolve_asset_graph()
    everything = dg.AssetSelection.from_string("*").resolve(graph)
    assert {k.to_user_string() for k in everything} == CHAIN
    one = dg.AssetSelection.from_string('key:"raw_locations"').resolve(graph)
    assert one == {dg.AssetKey("raw_locations")}


def test_ml_never_imports_dagster():
    import pathlib

    ml = pathlib.Path(__file__).resolve().parents[1] / "ml"
    offenders = [
        str(p) for p in ml.rglob("*.py") if "import dagster" in p.read_text() or "from dagster" in p.read_text()
    ]
    assert offenders == []


def test_the_definitions_load_without_the_heavy_libraries():
    """Every dagster process and DVC stage imports the definitions: they stay free of torch,
    transformers, geopandas, scikit-learn and the web stack (the stages import those inside
    their steps; the config classes live in ml/settings.py)."""
    import subprocess
    import sys

    heavy = ["torch", "transformers", "geopandas", "sklearn", "starlette", "matplotlib"]
    code = f"import sys, orchestration.definitions; print([m for m in {heavy!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
