"""`surrogate merge`: one result folder from the parts of several (machines, array jobs)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from ._job import summarize
from ._store import CHOICES, IDENTITY, RESPONSES, PartStore, UnitIndex, atomic_write_bytes, atomic_write_json, writer_lock


def merge(sources: Sequence[str | Path], out: str | Path) -> pd.DataFrame:
    """Copy every unit of every source run folder into `out` once. A unit already in `out`
    (by its key) is skipped, so merging again, or merging overlapping folders, never duplicates
    rows; the same (model, persona, participant) computed differently (another key) is an
    error, as in a resumed run. Returns the merged responses table."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with writer_lock(out, "merge"):
        store, choice_store = PartStore(out / RESPONSES, owner="merge"), PartStore(out / CHOICES, owner="merge")
        index = UnitIndex(store.read(columns=[*IDENTITY, "unit_key"]))
        infos = {}
        for src in map(Path, sources):
            folder = src / RESPONSES
            if not folder.is_dir():
                raise FileNotFoundError(f"{folder} does not exist; is {src} a surrogate run folder?")
            if src.resolve() == out.resolve():
                continue
            src_choices = PartStore(src / CHOICES)
            choice_names = src_choices.names()
            for part in PartStore(folder).parts():
                frame = pd.read_parquet(part)
                units = frame.drop_duplicates("unit_key")
                for ident, key in zip(units[IDENTITY].itertuples(index=False, name=None), units["unit_key"]):
                    if index.conflicts(ident, key):
                        raise ValueError(f"{part}: model {ident[0]!r}, persona {ident[1]!r}, participant "
                                         f"{ident[4]} was computed differently in {out} (another "
                                         "unit key: other weights, settings or code); merge into a new folder")
                new = frame[~frame["unit_key"].isin(set(index.keys.values()))]
                if new.empty:
                    continue
                name = store.new_name()
                if part.name in choice_names:
                    ch = pd.read_parquet(src_choices.folder / part.name)
                    choice_store.append(ch[ch["unit_key"].isin(set(new["unit_key"]))], name=name)
                store.append(new, name=name)
                units = new.drop_duplicates("unit_key")
                for ident, key in zip(units[IDENTITY].itertuples(index=False, name=None), units["unit_key"]):
                    index.add(ident, key)
            for info in sorted(src.glob("run*.json")):
                infos[str(info)] = json.loads(info.read_text())
        responses = store.read()
        atomic_write_json(out / "merged.json", {"sources": [str(s) for s in sources], "runs": infos,
                                                "rows": len(responses)})
        atomic_write_bytes(out / "summary.csv", summarize(responses).to_csv(index=False).encode())
    return responses
