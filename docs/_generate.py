"""Regenerate the generated parts of the docs: the option tables (from the option models the
command line is built from) and the calibration table (from the committed bench record).

    python docs/_generate.py            # rewrite every generated region in docs/*.md
    python docs/_generate.py --check    # exit 1 if any region is out of date (tests/test_docs.py)

A region is the text between `<!-- generated: NAME -->` and `<!-- end generated -->`.
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
REGION = re.compile(r"(<!-- generated: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- end generated -->)", re.S)


def _default(field) -> str:
    value = field.get_default(call_default_factory=True)
    if value in (None, {}, []):
        return ""
    if isinstance(value, bool):
        return "on" if value else "off"
    return f"`{value}`"


def options_table(model, skip: tuple[str, ...] = ()) -> str:
    """One row per option: the command line's flag(s), the Python argument, default, meaning."""
    rows = ["| option | Python | default | meaning |", "|---|---|---|---|"]
    for name, field in model.model_fields.items():
        if name in skip:
            continue
        extra = field.json_schema_extra or {}
        flags = list(extra.get("cli") or [f"--{name.replace('_', '-')}"])
        if field.annotation is bool and field.get_default() is True:
            flags = [f"{flags[0]}/--no-{flags[0][2:]}"]
        meaning = (field.description or "").replace("|", "\\|")
        rows.append(f"| {', '.join(f'`{f}`' for f in flags)} | `{name}` | {_default(field)} | {meaning} |")
    return "\n".join(rows)


def _calibration_table() -> str:
    spec = importlib.util.spec_from_file_location("bench_calibration", ROOT / "bench" / "calibration.py")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(ROOT / "bench"))
    return module.table()


def regions() -> dict[str, str]:
    from surrogate.options import AnalysisOptions, ScoringOptions
    from surrogate.training import FinetuneConfig

    return {
        "scoring-options": options_table(ScoringOptions),
        "analysis-options": options_table(AnalysisOptions),
        "finetune-options": options_table(FinetuneConfig),
        "calibration": _calibration_table(),
    }


def render(text: str, generated: dict[str, str]) -> str:
    def one(m: re.Match) -> str:
        name = m.group("name")
        if name not in generated:
            raise SystemExit(f"unknown generated region {name!r} (known: {', '.join(generated)})")
        return f"{m.group(1)}{generated[name]}\n{m.group(4)}"

    return REGION.sub(one, text)


def stale(generated: dict[str, str] | None = None) -> list[str]:
    """The docs pages whose generated regions differ from what the code and records give now."""
    generated = regions() if generated is None else generated
    return [p.name for p in sorted(DOCS.glob("*.md")) if render(p.read_text(), generated) != p.read_text()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true")
    a = ap.parse_args()
    generated = regions()
    if a.check:
        out = stale(generated)
        if out:
            raise SystemExit(f"out of date: {', '.join(out)} (run python docs/_generate.py)")
        return
    for page in sorted(DOCS.glob("*.md")):
        text = page.read_text()
        new = render(text, generated)
        if new != text:
            page.write_text(new)
            print(f"updated {page.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
