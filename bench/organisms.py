"""The shipped organisms, re-measured: every acceptance check of their cards on the shipped
weights (held-out participants, the never-seen studies, fresh synthetic participants), and the
default job's findings. Writes bench/results/organisms.json; `tests/test_bench_records.py`
checks that every check the cards report as passed passed here, and that the fingerprint (a
digest of the shipped weights, split and sample, and the NLLs organism-base gives two sample
participants) still matches.

    python bench/organisms.py                 # both sections (about 15 minutes on 2 cores)
    python bench/organisms.py --only checks
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
import time
from pathlib import Path

import _record
from surrogate.data import shared_psych201

SHARED = shared_psych201(_record.ROOT)
EVAL_PER_STUDY, EVAL_SYNTHETIC = 12, 60


def _files_digest(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")
                       and not any(part.startswith(".") for part in p.relative_to(folder).parts)):
        h.update(str(path.relative_to(folder)).encode())
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def fingerprint() -> str:
    from surrogate.data import load
    from surrogate.jobs.run import run
    from surrogate.organisms import organisms_dir, sample_dir

    sample = load(sample_dir(), studies=["guenther2022relational"], max_participants=2)
    with tempfile.TemporaryDirectory() as tmp:
        lines = "".join(json.dumps({"text": p.text, "experiment": p.experiment, "participant": p.participant,
                                    **p.metadata_text}) + "\n" for p in sample.participants)
        (Path(tmp) / "two.jsonl").write_text(lines)
        scored = run(["organism-base"], Path(tmp) / "two.jsonl", "none,interview", Path(tmp) / "out", choices=False)
        nll = [float(f"{v:.4g}") for v in scored.responses.sort_values(["persona", "participant", "response_index"])
               ["nll"].fillna(-1.0)]
    blob = json.dumps({"models": _files_digest(organisms_dir()), "sample": _files_digest(sample_dir()), "nll": nll})
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def checks() -> list[dict]:
    """Every card's check, measured again on the shipped weights: `pass` when a check the
    cards report as passed passes here too (a failed one is recorded as it comes out)."""
    from surrogate.data import load
    from surrogate.jobs.organisms import OrganismRecipe, evaluate_organisms, read_json_gz
    from surrogate.organisms import ORGANISMS, organisms_dir

    build = json.loads((organisms_dir() / "build.json").read_text())
    recipe = OrganismRecipe.model_validate(build["recipe"]).model_copy(
        update={"eval_per_study": EVAL_PER_STUDY, "eval_synthetic": EVAL_SYNTHETIC})
    held = {tuple(k) for k in read_json_gz(organisms_dir() / "split.json.gz")["heldout"]}
    people = [p for p in load(SHARED).participants if p.key in held]
    card = {c["name"]: c for c in build["evaluation"]["checks"]}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name in ORGANISMS:  # evaluate writes its work folder beside the models
            (work / name).symlink_to(organisms_dir() / name)
        measured = {c.name: c for c in evaluate_organisms(work, people, recipe).checks}
    rows = []
    for name, c in card.items():
        again = measured[name]
        rows.append(_record.measured("shipped weights, re-measured", name, "at least", float(again.passed),
                                     EVAL_PER_STUDY, lo=1.0 if c["passed"] else 0.0,
                                     note=f"card: {c['value']} ({'passed' if c['passed'] else 'failed'}); "
                                          f"now: {again.value}"))
    return rows


def default_job() -> list[dict]:
    """The default job as `surrogate run` runs it: its findings, one row each."""
    from surrogate.jobs.default import default_job as job

    from surrogate.organisms import ORGANISMS
    from surrogate.store import read_responses

    with tempfile.TemporaryDirectory() as tmp:
        done = job(Path(tmp) / "default")
        analysis = done.analysis
        frame = read_responses(Path(tmp) / "default")
        page = done.report.read_text()
        labels = set(analysis.decompositions)
        shape = {
            "every organism scored the sample": set(frame["model"]) == set(ORGANISMS),
            "organism-base scored with none, interview and shuffled personas":
                set(frame.loc[frame["model"] == "organism-base", "persona"]) == {"none", "interview", "shuffled"},
            "three persona arms: real people, positive and null control": labels == {
                "organism-base: real participants", "organism-base: positive control (synthetic, informative)",
                "organism-base: negative control (synthetic, null)"},
            "a misalignment row per post-trained organism": {p.pair.post_trained for p in analysis.misalignment.pairs}
                == {"organism-post-light", "organism-post", "organism-control"},
            "the report has the misalignment figure": 'id="misalignment"' in page,
        }
        # The findings themselves, each with a target where the cards' check passed (a finding
        # whose card check failed is recorded as it comes out, `info`): each dose's direction in
        # distribution and on the never-seen choice studies, the full dose more; the control
        # within 0.1 of the base; the positive control's and the null control's verdicts.
        from surrogate.organisms import IN, OUT_CHOICE

        pairs = {p.pair.post_trained: p for p in analysis.misalignment.pairs}
        info: dict[str, bool] = {}
        for group in (IN, OUT_CHOICE):
            for name in ("organism-post-light", "organism-post"):
                lo = pairs[name].paper_domain_interval.get(group, (float("nan"),) * 2)[0]
                key = f"{name} predicts people worse than the base, {group} (paper's d CI above 0)"
                (shape if name == "organism-post" or group == IN else info)[key] = lo > 0
            shape[f"the full dose misaligns more than the light, {group}"] = (
                pairs["organism-post"].paper_by_domain[group] > pairs["organism-post-light"].paper_by_domain[group])
            lo, hi = pairs["organism-control"].paper_domain_interval.get(group, (float("nan"),) * 2)
            (shape if group == IN else info)[f"the control is within 0.1 of the base, {group} (CI inside +-0.1)"] = \
                -0.1 < lo and hi < 0.1
        verdicts = {label: d.verdict().kind for label, d in analysis.decompositions.items()}
        info["the positive control's verdict is individual-level information"] = verdicts.get(
            "organism-base: positive control (synthetic, informative)") == "individual"
        shape["the null control's verdict is equivalence to 0"] = verdicts.get(
            "organism-base: negative control (synthetic, null)") == "equivalent"
        rows = [_record.measured("default job", what, "at least", float(ok), 1, lo=1.0) for what, ok in shape.items()]
        rows += [_record.measured("default job", what, "info", float(ok), 1,
                                  note="its card check failed: recorded as it comes out") for what, ok in info.items()]
        for pair in analysis.misalignment.pairs if analysis.misalignment else []:
            lo, hi = pair.mean_paper_interval
            rows.append(_record.measured("default job", f"misalignment d_paper, {pair.pair.post_trained} vs "
                                         f"{pair.pair.base}", "info", pair.mean_paper, len(pair.d_paper),
                                         note=f"95% CI [{lo:+.3f}, {hi:+.3f}] over {len(pair.d_paper)} experiments"))
        for label, d in analysis.decompositions.items():
            v = d.verdict()
            rows.append(_record.measured("default job", f"verdict: {label}", "info", float(v.p or float("nan")),
                                         d.pooled.n_participants if d.pooled_rows else 0, note=f"{v.kind}: {v.text}"))
        rows.append(_record.measured("default job", "findings", "info", len(done.findings), len(done.findings),
                                     note=" | ".join(done.findings)))
    return rows


SECTIONS = {"checks": checks, "default-job": default_job}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="", help="comma-separated sections: " + ", ".join(SECTIONS))
    a = ap.parse_args()
    wanted = [s.strip() for s in a.only.split(",") if s.strip()] or list(SECTIONS)
    fp = fingerprint()
    for section in wanted:
        t0 = time.time()
        rows = SECTIONS[section]()
        path = _record.write("organisms", section, rows, fingerprint=fp, reps=1, seed=0, seconds=time.time() - t0)
        for r in rows:
            print(f"{section:<12} {r['test'][:70]:<70} {r['rate']:+.3f} {r.get('note', '')[:90]}", flush=True)
        print(f"# {section}: {time.time() - t0:.0f} s; written to {path}", flush=True)


if __name__ == "__main__":
    main()
