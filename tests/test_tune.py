"""The choice protocol (ml/eval/tune.py) on known figures: the pick is the best mean on val,
whatever test says, and it is recorded before test is read; only finished experiments are read,
and one is reused for another value's name only with the same params and code."""

from __future__ import annotations

import hashlib
import json

import pytest
import yaml

from ml.eval import tune
from ml.eval.ablations import finished
from tests.conftest import make_root


def metrics(geoguessr: float, median: float = 900.0, country: float = 40.0, guesses: dict | None = None) -> dict:
    out = {"geoguessr": geoguessr, "median_km": median, "country_accuracy": country, "country_macro_accuracy": 30.0}
    return out | {f"guess_{k}": v for k, v in (guesses or {}).items()}


def entry(root, param: str, value: str, seed: int, figures: dict) -> dict:
    """One finished experiment as ``experiments`` gives it, run with this value and seed on the
    code in ``root`` (its one code dep: params.yaml as it is now)."""
    deps = {"params.yaml": hashlib.md5((root / "params.yaml").read_bytes()).hexdigest()}
    return {"metrics": figures, "params": tune.wanted_params(root, param, value, seed), "deps": deps}


@pytest.fixture
def root(tmp_path, monkeypatch):
    root = make_root(tmp_path / "p")
    monkeypatch.chdir(root)
    return root


def test_the_pick_is_made_on_val_and_recorded_before_test_is_read(root, monkeypatch):
    # 12 epochs: better on val in the mean (a noisy seed), worse on test; 20 epochs: the opposite
    found, param = {}, "geocell_model.epochs"
    for seed, (v12, v20) in enumerate([(2100, 2000), (1900, 2050), (2150, 2010)]):
        for value, v, t in (("12", v12, 1800), ("20", v20, 2400)):
            figures = {"val": metrics(v), "holdout": metrics(t)}
            found[tune.experiment(param, value, seed)] = entry(root, param, value, seed, figures)
    monkeypatch.setattr(tune, "experiments", lambda root, dvc: found)
    events = []
    real_figures, real_write = tune.figures, tune.Path.write_text
    monkeypatch.setattr(tune, "figures", lambda *a: events.append(("read", a[4])) or real_figures(*a))
    monkeypatch.setattr(
        tune.Path, "write_text", lambda self, text: events.append(("write", text)) or real_write(self, text)
    )
    assert tune.main(["geocell_model.epochs", "12", "20", "--seeds", "0,1,2", "--collect-only"]) == 0
    assert [e[0] for e in events] == ["read", "write", "read", "write"]
    assert events[0][1] == "val" and events[2][1] == "holdout"
    first = json.loads(events[1][1])
    assert first["pick"] == "12" and "test" not in first  # val's mean: 2050 vs 2020
    assert first["val"]["12"]["geoguessr"]["seeds"] == [2100, 1900, 2150]
    assert first["val"]["20"]["geoguessr"]["low"] == 2000 and first["current"] == tune.current(
        root, "geocell_model.epochs"
    )
    record = json.loads((root / "data" / "tuning" / "geocell-model-epochs.json").read_text())
    assert record["pick"] == "12" and record["test"]["20"]["geoguessr"]["mean"] == 2400  # shown, not used
    assert record["test_read_at"] >= record["picked_at"]


def test_a_guess_rule_is_read_from_the_runs_of_the_current_rule(root, monkeypatch):
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["refine"]["guess"] = "country_first"  # the current rule, whatever the repository's is
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    found = {
        tune.experiment("refine.guess", "country_first", seed): entry(
            root,
            "refine.guess",
            "country_first",
            seed,
            {
                "val": metrics(
                    2000 + seed, guesses={"top_cell": metrics(1900), "min_expected_distance": metrics(2100)}
                ),
                "holdout": metrics(2300, guesses={"top_cell": metrics(2200), "min_expected_distance": metrics(2250)}),
            },
        )
        for seed in (0, 1)
    }
    monkeypatch.setattr(tune, "experiments", lambda root, dvc: found)
    args = ["refine.guess", "country_first", "top_cell", "min_expected_distance", "--seeds", "0,1", "--collect-only"]
    assert tune.main(args) == 0
    record = json.loads((root / "data" / "tuning" / "refine-guess.json").read_text())
    assert record["current"] == "country_first" and record["pick"] == "min_expected_distance"
    assert record["val"]["country_first"]["geoguessr"]["seeds"] == [2000, 2001]
    assert tune.main(["refine.guess", "top_cell", "--seeds", "0,5", "--collect-only"]) == 1  # seed 5 never ran


def test_a_finished_twin_is_reused_only_with_the_same_params_and_code(root, monkeypatch):
    code = root / "ml" / "stage.py"
    code.parent.mkdir()
    code.write_text("x = 1\n")
    found = {}
    for seed in (0, 1):  # the current value's runs, made by a round on another param
        found[f"tune-other-param-s{seed}"] = {
            "metrics": {"val": metrics(2000 + seed), "holdout": metrics(2300)},
            "params": tune.wanted_params(root, "refine.guess", tune.current(root, "refine.guess"), seed),
            "deps": {"ml/stage.py": hashlib.md5(code.read_bytes()).hexdigest(), "data/geocells": "x.dir"},
        }
    found["tune-other-param-s9"] = found["tune-other-param-s0"] | {"params": {"profile": "other"}}
    ran = []
    monkeypatch.setattr(tune, "experiments", lambda root, dvc: found)
    monkeypatch.setattr("subprocess.run", lambda cmd, **kw: ran.append(cmd))
    assert tune.main(["refine.guess", "top_cell", "--seeds", "0,1"]) == 0
    record = json.loads((root / "data" / "tuning" / "refine-guess.json").read_text())
    assert not ran and record["runs"]["top_cell"] == ["tune-other-param-s0", "tune-other-param-s1"]
    assert record["val"]["top_cell"]["geoguessr"]["seeds"] == [2000, 2001]
    code.write_text("x = 2\n")  # the stages' code changed since: the twins no longer stand in
    assert tune.main(["refine.guess", "top_cell", "--seeds", "0,1"]) == 1
    assert len(ran) == 2 and all(cmd[1:4] == ["exp", "run", "--temp"] for cmd in ran)
    # nor does an experiment of the very name: it is removed and run again
    ran.clear()
    now = tune.current(root, "refine.guess")
    found[tune.experiment("refine.guess", now, 0)] = found["tune-other-param-s0"]
    assert tune.main(["refine.guess", "top_cell", "--seeds", "0"]) == 1
    assert [cmd[1:3] for cmd in ran] == [["exp", "remove"], ["exp", "run"]]


def test_only_finished_experiments_are_read():
    def node(name, state, value):
        data = {"metrics": {"m.json": {"data": {"val": {"geoguessr": value}}}}, "params": {}, "deps": {}}
        return {"executor": state and {"state": state}, "name": name, "revs": [{"name": name, "data": data}]}

    shown = [
        {"rev": "workspace", "name": None, "data": {}, "experiments": None},
        {
            "rev": "abc",
            "name": "main",
            "data": {},
            "experiments": [node("done", None, 1), node("killed", "running", 2), node("bad", "failed", 3)],
        },
    ]
    assert list(finished(shown, "m.json")) == ["done"]
