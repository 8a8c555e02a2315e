#!/usr/bin/env python3
"""Write the option tables of docs/configuration.md from the code's list_opts().

The tables sit between two markers in docs/configuration.md; the prose
around them is written by hand. ``--check`` exits 1 if the tables are stale
instead of rewriting them. ``tox -e genconfig`` runs this together with
oslo-config-generator; tests/unit/test_sample_config.py checks both.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from oslo_config import cfg

from kafka_bridge.daemon import options as daemon_options
from kafka_bridge.kafka import options as kafka_options

DOC = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"
BEGIN = "<!-- BEGIN GENERATED OPTION TABLES: tools/gen_option_docs.py -->"
END = "<!-- END GENERATED OPTION TABLES -->"


def groups() -> list[tuple[str, list[cfg.Opt]]]:
    """Every documented group and its options, in documentation order."""
    return daemon_options.list_opts() + kafka_options.list_opts()


def _type(opt: cfg.Opt) -> str:
    kind = {cfg.StrOpt: "string", cfg.IntOpt: "integer", cfg.FloatOpt: "float",
            cfg.BoolOpt: "boolean", cfg.ListOpt: "list", cfg.PortOpt: "port",
            cfg.HostAddressOpt: "host address"}.get(type(opt), type(opt).__name__)
    choices = getattr(opt.type, "choices", None)
    if choices:
        kind += ": " + " \\| ".join(f"`{c}`" for c in choices)
    low, high = getattr(opt.type, "min", None), getattr(opt.type, "max", None)
    if type(opt) is not cfg.PortOpt:
        if low is not None:
            kind += f", ≥ {low:g}" if isinstance(low, float) else f", ≥ {low}"
        if high is not None:
            kind += f", ≤ {high}"
    if opt.secret:
        kind += ", secret"
    return kind


def _default(opt: cfg.Opt) -> str:
    value = opt.default
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, (list, tuple)):
        return f"`{','.join(value)}`" if value else "empty"
    return f"`{value}`"


def _help(opt: cfg.Opt) -> str:
    text = " ".join(opt.help.split())
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def render() -> str:
    """The generated block, markers included."""
    lines = [BEGIN, ""]
    for group, opts in groups():
        lines += [f"### `[{group}]`", "", "| option | type | default | meaning |",
                  "|---|---|---|---|"]
        lines += [f"| `{opt.dest}` | {_type(opt)} | {_default(opt)} | {_help(opt)} |"
                  for opt in opts]
        lines.append("")
    lines.append(END)
    return "\n".join(lines)


def current(text: str) -> str:
    """The generated block as it is in text (markers included); ValueError if absent."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"{DOC} lacks the markers {BEGIN!r} ... {END!r}")
    return text[start:end + len(END)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if docs/configuration.md is stale, change nothing")
    args = parser.parse_args(argv)
    text = DOC.read_text(encoding="utf-8")
    block = current(text)
    if block == render():
        return 0
    if args.check:
        print(f"{DOC}: the option tables are stale; run `tox -e genconfig`", file=sys.stderr)
        return 1
    DOC.write_text(text.replace(block, render()), encoding="utf-8")
    print(f"updated {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
