"""dvc.yaml and the Dagster asset graph are the same graph: stage per asset, same edges."""

from pathlib import Path

import yaml

from orchestration.definitions import defs

REPO = Path(__file__).resolve().parents[1]
IN_PROCESS = """--config-json '{"execution":{"config":{"in_process":{}}}}'"""


def _stages():
    return yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]


def _asset_edges():
    graph = defs.resolve_asset_graph()
    return {
        key.to_user_string(): {p.to_user_string() for p in graph.get(key).parent_keys}
        for key in graph.get_all_asset_keys()
    }


def test_stage_per_asset_and_same_edges():
    stages, edges = _stages(), _asset_edges()
    assert set(stages) == set(edges)
    outs = {name: f"data/{name}" for name in stages}
    for name, stage in stages.items():
        written = [
            o if isinstance(o, str) else next(iter(o))
            for key in ("outs", "metrics", "plots")
            for o in stage.get(key, [])
        ]
        assert written and all(w == outs[name] or w.startswith(outs[name] + "/") for w in written), name
        deps = stage.get("deps", [])
        upstream = {other for other, out in outs.items() if any(d == out or d.startswith(out + "/") for d in deps)}
        assert upstream == edges[name], f"stage {name}: dvc deps {upstream} != asset deps {edges[name]}"


def test_stage_commands_materialize_their_asset():
    for name, stage in _stages().items():
        assert stage["cmd"] == f"dagster asset materialize -m orchestration.definitions --select {name} {IN_PROCESS}"


def test_stages_track_profile_and_their_section():
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for name, stage in _stages().items():
        assert "profile" in stage["params"], name
        if name in params:
            assert name in stage["params"], name


def test_stage_code_deps_are_what_the_asset_imports():
    """Each stage lists exactly the project files its asset's code imports, transitively (read
    from the source by ``assets.code``, the closure its ``code_version`` hashes): editing any of
    them reruns the stage in DVC and makes the asset Unsynced in Dagster, and nothing else does."""
    from tests.imports import code_deps

    for name, stage in _stages().items():
        listed = {d for d in stage.get("deps", []) if not d.startswith("data/") and "${" not in d}
        wanted = code_deps(name)
        assert listed == wanted, (
            f"dvc.yaml stage {name}: code deps differ from its asset's import closure; add "
            f"{sorted(wanted - listed)}, remove {sorted(listed - wanted)}"
        )


def test_code_versions_follow_the_closure(tmp_path):
    """An asset's code_version is a hash of its closure: the definitions carry it, and a changed
    byte in one of its files (only) changes it."""
    import shutil

    from assets.code import code_version

    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        assert graph.get(key).code_version == code_version(key.to_user_string()), key
    for package in ("ml", "assets", "orchestration"):
        shutil.copytree(REPO / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    before = {name: code_version(name, tmp_path) for name in _stages()}
    path = tmp_path / "ml" / "refine" / "refine.py"
    path.write_text(path.read_text() + "\n# edited\n")
    after = {name: code_version(name, tmp_path) for name in _stages()}
    changed = {name for name in before if before[name] != after[name]}
    assert changed == {name for name in _stages() if "ml/refine/refine.py" in _stages()[name]["deps"]}
    assert changed and changed != set(_stages())


def test_the_closure_follows_function_local_imports(tmp_path):
    from tests.imports import closure

    (tmp_path / "ml").mkdir()
    (tmp_path / "ml" / "__init__.py").write_text("")
    (tmp_path / "ml" / "a.py").write_text("def f():\n    from ml.b import g\n    return g\n")
    (tmp_path / "ml" / "b.py").write_text("import numpy\nfrom ml import c\n")
    (tmp_path / "ml" / "c.py").write_text("")
    names = {p.name for p in closure(tmp_path / "ml" / "a.py", tmp_path)}
    assert names == {"a.py", "b.py", "c.py", "__init__.py"}


def test_stage_code_deps_exist():
    for name, stage in _stages().items():
        for dep in stage.get("deps", []):
            if not dep.startswith("data/") and "${" not in dep:
                assert (REPO / dep).exists(), f"stage {name}: dep {dep} does not exist"
