#!/usr/bin/env python3
"""Keep the README's variable table in step with the role's argument specs.

meta/argument_specs.yml is the one description of the role's interface (ansible-core validates
it on every run); this renders it as the markdown table between the README's markers. The ranges
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
SPECS = ROOT / "roles/djchat_stack/meta/argument_specs.yml"
APP_BOUNDS = ROOT / "roles/djchat_stack/vars/main/app_bounds.yml"
README = ROOT / "README.md"
BEGIN = "<!-- BEGIN VARIABLES (scripts/variables-table.py) -->"
END = "<!-- END VARIABLES -->"


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


def table() -> str:
    options = yaml.safe_load(SPECS.read_text())["argument_specs"]["main"]["options"]
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
    try:
        head, rest = readme.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
    except ValueError:
        print(f"README.md lacks the markers {BEGIN!r} ... {END!r}", file=sys.stderr)
        return 1
    updated = f"{head}{BEGIN}\n{table()}\n{END}{tail}"
    if updated == readme:
        return 0
    if args.check:
        print(
            "README.md's variable table is out of date: run `python scripts/variables-table.py`",
            file=sys.stderr,
        )
        return 1
    README.write_text(updated)
    return 0


if __name__ == "__main__":
    sys.exit(main())
