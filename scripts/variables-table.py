#!/usr/bin/env python3
"""Keep the README's variable tables in step with the roles' argument specs.

Each role's meta/argument_specs.yml is the one description of its interface (ansible-core
validates it on every run); this renders its main entry point as the markdown table between the
README's markers for that role. The ranges
of the integers the app reads come from vars/main/app_bounds.yml (scripts/app-bounds.py), the
app's own, and are added to those variables' descriptions.

    python scripts/variables-table.py          # rewrite the table in README.md
    python scripts/variables-table.py --check  # fail when README.md is out of date (make lint)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
ROLES = ("djchat_stack", "docker_engine", "base_images", "swarm")
APP_BOUNDS = ROOT / "roles/djchat_stack/vars/main/app_bounds.yml"
README = ROOT / "README.md"
END = "<!-- END VARIABLES -->"


def begin(role: str) -> str:
    return f"<!-- BEGIN VARIABLES {role} (scripts/variables-table.py) -->"


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def default_of(spec: dict) -> str:
    if "default" not in spec:
        return "*(computed)*"
    value = spec["default"]
    if isinstance(value, str):
        return f"`{value}`" if value else '`""`'
    return f"`{json.dumps(value)}`"


def type_of(spec: dict) -> str:
    kind = spec.get("type", "str")
    if kind == "list" and "elements" in spec:
        kind = f"list of {spec['elements']}"
    if "choices" in spec:
        kind += ": " + ", ".join(f"`{c}`" for c in spec["choices"])
    return kind


def description_of(name: str, spec: dict, app_bounds: dict) -> str:
    description = str(spec.get("description", ""))
    if name in app_bounds:
        bound = app_bounds[name]
        description += f" (range {bound['minimum']}-{bound['maximum']}, the app's {bound['env']})"
    return description


def table(role: str) -> str:
    specs = ROOT / "roles" / role / "meta/argument_specs.yml"
    options = yaml.safe_load(specs.read_text())["argument_specs"]["main"]["options"]
    app_bounds = yaml.safe_load(APP_BOUNDS.read_text())["_djchat_app_bounds"]
    rows = ["| variable | type | default | description |", "|---|---|---|---|"]
    for name, spec in options.items():
        rows.append(
            f"| `{name}` | {cell(type_of(spec))} | {cell(default_of(spec))} "
            f"| {cell(description_of(name, spec, app_bounds))} |"
        )
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="only report whether README.md is current"
    )
    args = parser.parse_args()

    readme = README.read_text()
    updated = readme
    for role in ROLES:
        try:
            head, rest = updated.split(begin(role), 1)
            _, tail = rest.split(END, 1)
        except ValueError:
            print(f"README.md lacks the markers {begin(role)!r} ... {END!r}", file=sys.stderr)
            return 1
        updated = f"{head}{begin(role)}\n{table(role)}\n{END}{tail}"
    if updated == readme:
        return 0
    if args.check:
        print(
            "README.md's variable tables are out of date: run `python scripts/variables-table.py`",
            file=sys.stderr,
        )
        return 1
    README.write_text(updated)
    return 0


if __name__ == "__main__":
    sys.exit(main())
