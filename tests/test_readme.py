"""The README's two commands are the ones users and CI run."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _readme_commands():
    text = (ROOT / "README.md").read_text()
    blocks = [b.split("```", 1)[0].strip() for b in text.split("```bash\n")[1:]]
    return blocks[0], blocks[1]


def test_ci_runs_the_readme_test_command():
    _, test_command = _readme_commands()
    assert test_command == "pip install -e '.[test]' && pytest -q"
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert test_command in ci_lines


def test_first_command_runs_the_demo():
    first, _ = _readme_commands()
    assert first == "pip install -e . && lean demo"


def test_the_use_from_python_example_names_real_functions():
    """The README's Python example (it trains for about a minute, so it is run by hand, not here) compiles, and
    every name it imports exists."""
    import ast
    import importlib

    block = (ROOT / "README.md").read_text().split("```python\n")[1].split("```")[0]
    tree = ast.parse(block)
    compile(tree, "README.md", "exec")
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            module = importlib.import_module(node.module)
            for alias in node.names:
                assert hasattr(module, alias.name), f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                importlib.import_module(alias.name)
