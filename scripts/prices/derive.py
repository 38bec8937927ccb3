#!/usr/bin/env python3
"""Derive src/prices/litellm.json, the built-in price table, from LiteLLM's
model_prices_and_context_window.json (MIT, https://github.com/BerriAI/litellm).

Usage (plain Python 3.11, standard library only):

    pip download litellm --no-deps -d /tmp/litellm-wheel
    scripts/prices/derive.py /tmp/litellm-wheel/litellm-*.whl

Given the wheel, it reads litellm/model_prices_and_context_window_backup.json, the version (from
the wheel's dist-info) and LiteLLM's LICENSE out of it, and writes src/prices/litellm.json and
src/prices/LICENSE-litellm. Given the JSON file itself, pass --version and --license.

What is kept: the entries with a token price (input_cost_per_token or output_cost_per_token) whose
mode is chat, completion or responses, or that have no mode; of those only the fields in KEPT.
Prices are written as the very decimal text LiteLLM has, never re-formatted through a float, and
each is checked to read back as the same value through an IEEE double (the Rust side parses the
JSON number as a double, formats it as the shortest decimal that reads back as that double, and
turns that decimal exactly into integer atto-dollars per token). Keys are sorted, one model a line,
so an update is a readable diff.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import re
import sys
import zipfile
from decimal import Decimal

MODES = {"chat", "completion", "responses"}

KEPT = (
    "litellm_provider",
    "input_cost_per_token",
    "output_cost_per_token",
    "cache_read_input_token_cost",
    "cache_creation_input_token_cost",
    "cache_creation_input_token_cost_above_1hr",
    "input_cost_per_token_above_200k_tokens",
    "output_cost_per_token_above_200k_tokens",
    "cache_read_input_token_cost_above_200k_tokens",
    "cache_creation_input_token_cost_above_200k_tokens",
    # The 1-hour cache write above 200k: LiteLLM prices 1-hour writes of a long prompt with it.
    "cache_creation_input_token_cost_above_1hr_above_200k_tokens",
)

JSON_NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")

REPO = pathlib.Path(__file__).resolve().parents[2]


class Raw(str):
    """The text of a JSON number exactly as written in the source file."""


def load(text: str) -> dict:
    # parse_float/parse_int receive the literal text: keep it, so no price passes through a float.
    return json.loads(text, parse_float=Raw, parse_int=Raw)


def check_price(model: str, field: str, value: object) -> str:
    if not isinstance(value, Raw) or not JSON_NUMBER.fullmatch(value):
        raise SystemExit(f"{model}: {field} is {value!r}, not a number")
    exact = Decimal(value)
    if exact < 0:
        raise SystemExit(f"{model}: {field} is negative ({value})")
    # What the Rust side recovers: the shortest decimal that reads back as the same double.
    if Decimal(repr(float(value))) != exact:
        raise SystemExit(f"{model}: {field} = {value} does not round-trip through a double")
    return str(value)


def derive(source: dict) -> tuple[dict[str, dict[str, str]], int]:
    table: dict[str, dict[str, str]] = {}
    finer_than_atto = 0
    for model, entry in source.items():
        if not isinstance(entry, dict) or model == "sample_spec":
            continue
        mode = entry.get("mode")
        if mode is not None and mode not in MODES:
            continue
        if entry.get("input_cost_per_token") is None and entry.get("output_cost_per_token") is None:
            continue
        kept: dict[str, str] = {}
        for field in KEPT:
            value = entry.get(field)
            if value is None:
                continue
            if field == "litellm_provider":
                if not isinstance(value, str):
                    raise SystemExit(f"{model}: litellm_provider is {value!r}, not a string")
                kept[field] = json.dumps(value)
            else:
                kept[field] = check_price(model, field, value)
                if (Decimal(value) * 10**18) % 1 != 0:
                    finer_than_atto += 1
        table[model] = kept
    return table, finer_than_atto


def render(table: dict[str, dict[str, str]], note: str) -> str:
    lines = ["{", f'  "_source": {json.dumps(note)},']
    keys = sorted(table)
    for i, model in enumerate(keys):
        fields = ", ".join(f"{json.dumps(f)}: {v}" for f, v in sorted(table[model].items()))
        comma = "," if i + 1 < len(keys) else ""
        lines.append(f"  {json.dumps(model)}: {{{fields}}}{comma}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("source", help="the litellm wheel (.whl) or model_prices_and_context_window*.json")
    ap.add_argument("--version", help="litellm version (read from the wheel when given one)")
    ap.add_argument("--license", help="LiteLLM's LICENSE file (read from the wheel when given one)")
    ap.add_argument("--out", default=str(REPO / "src/prices/litellm.json"))
    ap.add_argument("--license-out", default=str(REPO / "src/prices/LICENSE-litellm"))
    args = ap.parse_args()

    version, license_text = args.version, None
    if args.source.endswith(".whl"):
        with zipfile.ZipFile(args.source) as wheel:
            names = wheel.namelist()
            text = wheel.read("litellm/model_prices_and_context_window_backup.json").decode()
            dist = next(n.split("/")[0] for n in names if n.split("/")[0].endswith(".dist-info"))
            version = version or dist.removeprefix("litellm-").removesuffix(".dist-info")
            lic = [n for n in names if n.startswith(dist + "/") and n.rsplit("/", 1)[-1] == "LICENSE"]
            if lic:
                license_text = wheel.read(lic[0]).decode()
    else:
        text = pathlib.Path(args.source).read_text()
    if args.license:
        license_text = pathlib.Path(args.license).read_text()
    if not version or license_text is None:
        raise SystemExit("need --version and --license when the source is not the wheel")

    table, finer = derive(load(text))
    note = (
        f"Derived from LiteLLM {version}, litellm/model_prices_and_context_window_backup.json "
        "(https://github.com/BerriAI/litellm), MIT license: see LICENSE-litellm. "
        "Regenerate with scripts/prices/derive.py; do not edit by hand."
    )
    out = pathlib.Path(args.out)
    out.write_text(render(table, note))
    pathlib.Path(args.license_out).write_text(license_text)
    print(
        f"{out}: {len(table)} models, {out.stat().st_size} bytes, litellm {version}; "
        f"{finer} prices finer than 1e-18 USD (rounded to the nearest atto-dollar when read)",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
