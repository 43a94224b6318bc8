"""`surrogate merge`: one result folder from the parts of several (machines, array jobs)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from .run import summarize
from ..store import (CHOICES, IDENTITY, RESPONSES, ResultFolder, UnitIndex, atomic_write_bytes, atomic_write_json,
                     check_labels)


def merge(sources: Sequence[str | Path], out: str | Path) -> pd.DataFrame:
    """Copy every unit of every source run folder into `out` once, each source verified
    against its manifests. A unit already in `out` (by its key) is skipped, so merging
    again, or merging overlapping folders, never duplicates rows; the same (model, persona,
    participant) computed differently (another key), or a label that names different models
    in two folders, is an error. Returns the merged responses table."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sources = [Path(s) for s in sources]
    for src in sources:
        if not (src / RESPONSES).is_dir():
            raise FileNotFoundError(f"{src / RESPONSES} does not exist; is {src} a surrogate run folder?")
    check_labels([out, *[s for s in sources if s.resolve() != out.resolve()]], merging=True)
    target = ResultFolder(out)
    with target.writer("merge") as writer:
        index = UnitIndex(writer.existing(columns=[*IDENTITY, "unit_key"]))
        infos = {}
        for src in sources:
            if src.resolve() == out.resolve():
                continue
            folder = ResultFolder(src)
            responses, choices = folder.read(RESPONSES), folder.read(CHOICES)
            units = responses.drop_duplicates("unit_key")
            for ident, key in zip(units[IDENTITY].itertuples(index=False, name=None), units["unit_key"]):
                if index.conflicts(ident, key):
                    raise ValueError(f"{src}: model {ident[0]!r}, persona {ident[1]!r}, participant {ident[4]} was "
                                     f"computed differently in {out} (another unit key: other weights, settings or "
                                     "code); merge into a new folder")
            new = responses[~responses["unit_key"].isin(set(index.keys.values()))]
            for label, rec in folder.labels().items():
                if label in set(new["model"]) and isinstance(rec.get("fingerprint"), dict):
                    writer.register(label, rec["fingerprint"])
            if not new.empty:
                keep = set(new["unit_key"])
                writer.commit(new, choices[choices["unit_key"].isin(keep)] if not choices.empty else choices)
                for ident, key in zip(new.drop_duplicates("unit_key")[IDENTITY].itertuples(index=False, name=None),
                                      new.drop_duplicates("unit_key")["unit_key"]):
                    index.add(ident, key)
            for info in sorted(src.glob("run*.json")):
                try:
                    infos[str(info)] = json.loads(info.read_text())
                except ValueError:
                    raise ValueError(f"{info}: not valid JSON (edited or damaged)") from None
        responses = writer.existing()
        atomic_write_json(out / "merged.json", {"sources": [str(s) for s in sources], "runs": infos,
                                                "rows": len(responses)})
        atomic_write_bytes(out / "summary.csv", summarize(responses).to_csv(index=False).encode())
    return responses
