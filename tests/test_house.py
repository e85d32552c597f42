"""The structure of the package: importing changes nothing, dependencies point one way (also through imports
inside functions), the command line is thin, and its help says what each option takes."""

import ast
import inspect
import json
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import lean
from lean.cli import main

ROOT = Path(lean.__file__).resolve().parent

# Which rooms each room may import (ARCHITECTURE.md): kernels <- nn <- nets <- train <- compress, dynamic; data stands
# alone; hw reads models only through nn (and builds named nets); nothing imports cli.
ALLOWED = {
    "errors": set(),
    "kernels": {"errors"},
    "nn": {"kernels", "errors"},
    "nets": {"nn", "errors"},
    "data": {"errors"},
    "hw": {"nn", "nets", "errors"},
    "train": {"kernels", "nn", "nets", "data", "hw", "errors"},
    "compress": {"kernels", "nn", "nets", "data", "hw", "train", "errors"},
    "dynamic": {"kernels", "nn", "nets", "data", "train", "errors"},  # not hw: a budget in mJ is the command's
    "bench": {"kernels", "nn", "nets", "errors"},
    "plot": {"errors"},
    "demo": {"train", "compress", "hw", "nn", "errors"},
    "cli": {"errors", "kernels", "nn", "nets", "data", "hw", "train", "compress", "dynamic", "bench", "plot",
            "demo"},
}


def _imports(path):
    """Every lean module a file imports, at module level or inside functions."""
    rel = path.relative_to(ROOT.parent).with_suffix("").parts  # ("lean", room, ...)
    package = list(rel[:-1]) if path.name != "__init__.py" else list(rel[:-1])
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - (node.level - 1)] if node.level else []
            if node.module:
                found.append((".".join(base + node.module.split(".")), node.lineno))
            else:
                found += [(".".join(base + [a.name]), node.lineno) for a in node.names]
    return [(m, line) for m, line in found if m.split(".")[0] == "lean" and len(m.split(".")) > 1]


def test_dependencies_point_one_way():
    wrong = []
    files = sorted(ROOT.rglob("*.py"))
    assert len(files) > 40
    for path in files:
        parts = path.relative_to(ROOT).with_suffix("").parts
        room = parts[0]
        if room == "__init__":
            continue
        for module, line in _imports(path):
            target = module.split(".")[1]
            if not (ROOT / target).is_dir() and not (ROOT / f"{target}.py").is_file():
                continue  # a name of the import-light package root (__version__, configure)
            if target != room and target not in ALLOWED[room]:
                wrong.append(f"{path.relative_to(ROOT.parent)}:{line} imports {module}")
    assert not wrong, "\n".join(wrong)


def test_importing_lean_changes_nothing_in_the_process():
    code = """
import json, os, sys
import numba, numpy
from threadpoolctl import threadpool_info
env = dict(os.environ)
blas = [(p["filepath"], p["num_threads"]) for p in threadpool_info() if p["user_api"] == "blas"]
layer = numba.config.THREADING_LAYER
import lean, lean.kernels, lean.nn, lean.nets, lean.data, lean.train, lean.compress, lean.dynamic, lean.hw, lean.cli
import lean.train.loop, lean.compress.pipeline, lean.compress.slimming, lean.hw.predictor, lean.bench, lean.demo
after = [(p["filepath"], p["num_threads"]) for p in threadpool_info() if p["user_api"] == "blas"]
unchanged = {"environment": dict(os.environ) == env, "blas": after == blas,
             "numba_layer": numba.config.THREADING_LAYER == layer}
try:
    numba.threading_layer()
    launched = True
except ValueError:
    launched = False
settings = lean.configure(threads=1)  # setting the thread count launches Numba's threading layer
configured = [(p["filepath"], p["num_threads"]) for p in threadpool_info() if p["user_api"] == "blas"]
print(json.dumps({"unchanged": unchanged, "launched": launched, "blas_before": blas, "configured": configured,
                  "layer": numba.threading_layer(), "settings": settings}))
"""
    env = {k: v for k, v in __import__("os").environ.items() if k not in ("NUMBA_THREADING_LAYER", "OMP_WAIT_POLICY")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["unchanged"] == {"environment": True, "blas": True, "numba_layer": True}
    assert result["launched"] is False
    assert result["configured"] and all(n == 1 for _, n in result["configured"])  # NumPy's BLAS: 1 thread
    assert result["layer"] == "workqueue" and result["settings"]["blas_threads"] == 1


def _commands(group=main, path="lean"):
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from _commands(command, f"{path} {name}")
        else:
            yield f"{path} {name}", command


def test_command_bodies_are_thin():
    long = []
    for path, command in _commands():
        source = inspect.getsource(command.callback).split('"""')[-1]  # after the docstring
        body = [line for line in source.splitlines() if line.strip() and not line.strip().startswith("#")]
        if len(body) > 25:
            long.append(f"{path}: {len(body)} lines")
    assert not long, long


def test_every_integer_option_shows_its_range_and_every_json_is_described():
    bare, undescribed = [], []
    for path, command in _commands():
        for param in command.params:
            if isinstance(param, click.Option) and param.type is click.INT:
                bare.append(f"{path} {param.opts[0]}")
            if isinstance(param, click.Option) and "--json" in param.opts and "JSON" not in (param.help or ""):
                undescribed.append(path)
    assert not bare, f"integer options without a range: {bare}"
    assert not undescribed, f"--json without a description: {undescribed}"


def test_lean_alone_prints_its_help():
    r = CliRunner().invoke(main, [])
    assert r.exit_code == 0 and "error:" not in r.output and "Commands:" in r.output


def test_train_help_marks_required_options_and_recipe_defaults():
    r = CliRunner().invoke(main, ["train", "--help"])
    text = " ".join(r.output.split())
    assert "Network name (see `lean nets`). [required unless --resume]" in text
    assert "[default: the net's recipe, 0.1 (lenet5: 0.05)]" in text
    nets = json.loads(CliRunner().invoke(main, ["nets", "--json"]).output)
    lenet = next(n for n in nets if n["name"] == "lenet5")
    assert lenet["recipe"]["lr"] == 0.05 and lenet["recipe"]["augment"] is False
    assert "90.99%" in lenet["recipe_source"]


def test_debug_shows_the_traceback_of_a_user_error(tmp_path):
    r = CliRunner().invoke(main, ["--debug", "eval", str(tmp_path / "none.h5")])
    assert r.exit_code == 1 and "Traceback" in r.output and "error: checkpoint" in r.output


def test_a_bug_keeps_its_traceback(monkeypatch):
    import lean.nets.registry as registry

    def broken(*args, **kw):
        raise ValueError("operands could not be broadcast together")  # a NumPy error deep inside: a bug

    monkeypatch.setattr(registry, "catalog", broken)
    with pytest.raises(ValueError, match="broadcast"):
        CliRunner().invoke(main, ["nets"], catch_exceptions=False)


def test_eval_draws_progress_on_a_terminal(capsys):
    from lean.cli._common import Progress

    progress = Progress()
    progress.enabled = True
    progress.batches(500, 1000)
    progress.batches(1000, 1000)
    assert "test [" in capsys.readouterr().err


def test_bench_int8_conv_says_which_path_it_ran():
    r = CliRunner().invoke(main, ["bench", "kernel", "int8-conv", "--batch-size", "2", "--input", "4,8,8",
                                  "--out-channels", "4"])
    assert r.exit_code == 0, r.output
    assert any(f"({path} path)" in r.output for path in ("vnni", "exact-float", "int"))


def test_hw_predict_labels_energy_with_its_unit():
    r = CliRunner().invoke(main, ["hw", "predict", "--workload", "alexnet", "--accel", "eyeriss"])
    assert r.exit_code == 0 and "energy M x 16-bit MAC" in r.output
    r = CliRunner().invoke(main, ["hw", "predict", "--workload", "alexnet", "--accel", "tpu-like"])
    assert r.exit_code == 0 and "energy uJ" in r.output


def test_recipes_refine_from_every_run_to_a_net_on_a_dataset(monkeypatch):
    from lean.nets import recipes
    from lean.train import TrainConfig

    monkeypatch.setitem(recipes.RECIPES, "@mnist", {"lr": 0.2, "epochs": 5})
    monkeypatch.setitem(recipes.RECIPES, "lenet5@mnist", {"lr": 0.01})
    assert recipes.recipe("resnet20", "mnist")["lr"] == 0.2 and recipes.recipe("resnet20")["lr"] == 0.1
    assert recipes.recipe("lenet5", "mnist")["lr"] == 0.01 and recipes.recipe("lenet5", "mnist")["epochs"] == 5
    assert recipes.recipe("lenet5", "digits")["lr"] == 0.05
    config = TrainConfig(net="lenet5", data="mnist")
    assert (config.lr, config.epochs, config.augment) == (0.01, 5, False)
    assert TrainConfig(net="lenet5", data="mnist", lr=0.3).lr == 0.3  # a given setting wins


def test_a_run_leaves_the_model_and_the_programs_threading_as_they_were():
    code = """
import json
from threadpoolctl import threadpool_info
import lean
lean.configure(blas_threads=None, free_memory_reuse=False)  # the program's own choice
blas = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]
from lean.data import load
from lean.nets import build
from lean.train import PSGConfig, TrainConfig, Trainer
data = load("digits")
model = build("resnet8", input_shape=data.input_shape, num_classes=10)
trainer = Trainer(model, data, TrainConfig(net="resnet8", data="digits", epochs=1, methods=(PSGConfig(adaptive=0.05),)))
trainer.run()
layers = [m for m in trainer.model.net.modules() if hasattr(m, "operand_hook")]
print(json.dumps({"blas_before": blas, "blas_after": [p["num_threads"] for p in threadpool_info()
                                                       if p["user_api"] == "blas"][:len(blas)],
                  "hooks": sum(m.operand_hook is not None for m in layers),
                  "observers": sum(len(m.observers) for m in trainer.model.net.modules())}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["blas_after"] == result["blas_before"]  # the Trainer kept the program's configure()
    assert result["hooks"] == 0 and result["observers"] == 0  # methods uninstalled when the run ended
