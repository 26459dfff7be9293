"""The import arrows of STYLE §1 and the README's promises, checked on the source itself."""

import ast
import re
from pathlib import Path

from deployments import cli

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("deployments", "flows", "tasks", "clients", "store", "blocks", "dashboard")
# Who may import whom (besides itself): deployments → flows → tasks → clients, store; blocks
# import nothing of ours; the dashboard reads the store (and masks what it shows with the one redaction module).
ALLOWED = {
    "deployments": {"flows", "tasks", "clients", "store", "blocks"},
    "flows": {"tasks", "store", "blocks"},
    "tasks": {"clients", "store", "blocks"},
    "clients": set(),
    "store": set(),
    "blocks": set(),
    "dashboard": {"store", "clients.redaction"},
}


def imported_modules(path: Path) -> set[str]:
    """The modules of ours a file imports, by full name."""
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return {name for name in names if name.split(".")[0] in PACKAGES}


def test_imports_point_only_the_allowed_way():
    wrong = []
    for package in PACKAGES:
        allowed = ALLOWED[package] | {package}
        for path in sorted((ROOT / package).rglob("*.py")):
            for module in sorted(imported_modules(path)):
                if module.split(".")[0] not in allowed and module not in allowed:
                    wrong.append(f"{path.relative_to(ROOT)} imports {module}")
    assert wrong == []


def test_only_the_store_imports_sqlalchemy_and_only_commands_start_processes():
    offenders = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            source = path.read_text()
            if package != "store" and re.search(r"^\s*(from|import) sqlalchemy", source, re.M):
                offenders.append(f"{path.relative_to(ROOT)} imports sqlalchemy")
            if "shell=True" in source:
                offenders.append(f"{path.relative_to(ROOT)} uses shell=True")
    assert offenders == []


def test_clients_do_not_import_prefect():
    assert [p.name for p in (ROOT / "clients").rglob("*.py") if re.search(r"^\s*(from|import) prefect", p.read_text(), re.M)] == []


def test_readme_names_every_cli_verb_and_every_deployed_flow():
    readme = (ROOT / "README.md").read_text()
    verbs = [command.name or command.callback.__name__ for command in cli.app.registered_commands]
    verbs += [group.name for group in cli.app.registered_groups]
    assert "up" in verbs
    assert [verb for verb in verbs if f"vigia {verb}" not in readme] == []
    deployments = re.findall(r"entrypoint: flows/\w+\.py:(\w+)", (ROOT / "prefect.yaml").read_text())
    flow_names = [name.replace("_", "-") for name in deployments]
    assert [name for name in flow_names if f"`{name}`" not in readme] == []
    assert "make up" in readme and "make test" in readme
