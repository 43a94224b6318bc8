"""The README and the docs say what runs: every bash and python block that can run offline is
run here (scaled down), every flag they write exists, and the generated tables are current.

A block is run unless the line before it is `<!-- not run: REASON -->`; a block after
`<!-- file: NAME -->` is written to NAME in the page's folder before the page's commands run.
Hub model ids become the local random-weight models (`demo-base` for ids ending in `-Base`,
`demo-chat` otherwise), `../shared/psych201` a small tree of the same studies (the shortest
transcripts of participants the organisms did and did not train on), and sizes are scaled down.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from surrogate.cli import app

from .conftest import PSYCH201, require_shared

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"(?:<!-- (?P<mark>not run|file): ?(?P<arg>[^>]*?) -->\n)?```(?P<lang>\w*)\n(?P<body>.*?)```", re.S)
HUB = re.compile(r"\b(?:Qwen|meta-llama|allenai|deepseek-ai|mistralai|google)/[\w.\-]+")
SHARED_TREE = "../shared/psych201"
PER_STUDY = 4
MAX_CHARS = 6000
# Sizes a page's commands are run at (flag -> the most the test uses), and the same in Python.
SCALE = {"--max-participants": PER_STUDY, "--max-steps": 2, "--participants": 8, "--n-perm": 99}
PY_SCALE = {"max_participants": PER_STUDY, "max_steps": 2, "participants": 8, "n_perm": 99}
# What each page's commands must have made (beyond exiting with 0).
MADE = {
    "README.md": ["runs/qwen3/analysis/misalignment.csv", "report/qwen3/report.html"],
    "scoring.md": ["runs/qwen3/responses.parquet", "runs/speed/run.json"],
    "personas.md": ["runs/personas/persona_effects.csv", "runs/strategies/strategy_ranking.csv"],
    "estimators.md": ["runs/qwen3/analysis/misalignment.csv", "runs/qwen3/analysis/persona_effects.csv"],
    "reports.md": ["report/qwen3/report.html", "report/qwen3/figures/misalignment.png"],
    "lora.md": ["runs/lora/report.json", "runs/lora-scored/responses.parquet"],
    "custom-studies.md": ["runs/doors/report/report.html", "runs/doors/agents/comparison/summary.txt",
                          "runs/doors/imported/behaviour.csv"],
    "scale-out.md": ["runs/grid/responses.parquet", "runs/grid/analysis/summary.txt"],
    "python.md": ["report/relational/report.html", "runs/lora/report.json", "runs/doors/agents/comparison"],
}


@dataclass
class Block:
    page: Path
    line: int
    lang: str
    body: str
    mark: str | None
    arg: str

    @property
    def runs(self) -> bool:
        return self.lang in ("bash", "python") and self.mark != "not run"

    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    text = page.read_text()
    return [Block(page, text[: m.start()].count("\n") + 1, m["lang"], m["body"], m["mark"], (m["arg"] or "").strip())
            for m in FENCE.finditer(text)]


def commands(body: str) -> list[list[str]]:
    """The command lines of a bash block, continuations joined, comments dropped."""
    out = []
    for line in body.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        if words:
            out.append(words)
    return out


def surrogate_args(words: list[str]) -> list[str] | None:
    """The arguments after `surrogate` in a command line (also behind torchrun/accelerate)."""
    return words[words.index("surrogate") + 1:] if "surrogate" in words else None


def _click_commands() -> dict[str, object]:
    import typer

    group = typer.main.get_command(app)
    out = {}
    for name, cmd in group.commands.items():
        if hasattr(cmd, "commands"):  # a sub-group: `organisms build`
            out |= {f"{name} {sub}": c for sub, c in cmd.commands.items()}
        else:
            out[name] = cmd
    return out


def _split(args: list[str], known: dict[str, object]) -> tuple[str, list[str]]:
    two = " ".join(args[:2])
    return (two, args[2:]) if two in known else (args[0], args[1:])


# ---- structure ---------------------------------------------------------------------------

def test_every_block_runs_or_says_why_not():
    for page in PAGES:
        for b in blocks(page):
            if b.mark == "not run":
                assert len(b.arg) > 5, f"{b.where()}: say why the block is not run"
            if b.mark == "file":
                assert b.arg and "/" not in b.arg, f"{b.where()}: a file block names a plain file"
            if b.runs and b.lang == "bash":
                for words in commands(b.body):
                    assert words[0] == "surrogate", f"{b.where()}: only surrogate commands run here: {words}"


def test_every_flag_the_docs_write_exists():
    known = _click_commands()
    missing = []
    for page in PAGES:
        for b in blocks(page):
            if b.lang != "bash":
                continue
            for words in commands(b.body):
                args = surrogate_args(words)
                if not args:
                    continue
                name, rest = _split(args, known)
                assert name in known, f"{b.where()}: no command `surrogate {name}`"
                flags = {o for p in known[name].params for o in (*p.opts, *p.secondary_opts)}
                missing += [f"{b.where()}: surrogate {name} {w}" for w in rest
                            if w.startswith("--") and w.split("=")[0] not in flags]
    assert not missing, missing


def test_the_readme_is_a_page_with_docs_behind_it():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    first = blocks(ROOT / "README.md")[0]
    lines = commands(first.body)
    assert lines[0][-2:] == ["surrogate", "run"] and lines[1] == ["python", "-m", "pytest"]
    assert first.line <= 5
    ci = (ROOT / ".ci" / "run").read_text()
    assert first.body.splitlines()[0] in ci and "python -m pytest\n" in ci
    for link in re.findall(r"\]\((docs/[\w.-]+\.md)", readme):
        assert (ROOT / link).is_file(), link
    nav = (ROOT / "mkdocs.yml").read_text()
    for page in (ROOT / "docs").glob("*.md"):
        assert page.name in nav, f"{page.name} is not in mkdocs.yml's nav"


def _anchors(page: Path) -> set[str]:
    """GitHub's anchors of a page's headings."""
    out = set()
    for heading in re.findall(r"^#+ (.+)$", re.sub(r"```.*?```", "", page.read_text(), flags=re.S), re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        out.add(slug)
    return out


def test_links_between_pages_resolve():
    for page in PAGES:
        for target, anchor in re.findall(r"\]\(([\w./-]*\.md)?(?:#([\w-]+))?\)", page.read_text()):
            path = (page.parent / target).resolve() if target else page
            assert path.is_file(), f"{page.name}: {target}"
            if anchor:
                assert anchor in _anchors(path), f"{page.name}: {target}#{anchor}"


def test_generated_tables_are_current():
    spec = importlib.util.spec_from_file_location("docs_generate", ROOT / "docs" / "_generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.stale() == [], "run python docs/_generate.py"


def test_the_custom_study_file_is_the_example():
    toml = [b for b in blocks(ROOT / "docs" / "custom-studies.md") if b.lang == "toml"][0]
    assert toml.body in (ROOT / "examples" / "two_doors.toml").read_text()


# ---- running the pages ---------------------------------------------------------------------

def _named_studies() -> set[str]:
    names = set()
    for page in PAGES:
        for b in blocks(page):
            if b.runs:
                names |= set(re.findall(r"--study[ =](\w+)", b.body))
                names |= set(re.findall(r"psych201/(\w+)", b.body))
                for group in re.findall(r"studies=\[([^\]]*)\]", b.body):
                    names |= set(re.findall(r'"(\w+)"', group))
    return names - {"categories"}


@pytest.fixture(scope="module")
def small_tree(tmp_path_factory) -> Path:
    """The studies the docs name, each with the shortest transcripts, and the categories file."""
    require_shared()
    from surrogate.organisms import trained_participants

    trained = trained_participants("organism-base")
    root = tmp_path_factory.mktemp("psych201")
    for study in sorted(_named_studies()):
        with zipfile.ZipFile(PSYCH201 / study / "prompts.jsonl.zip") as zf, zf.open("prompts.jsonl") as f:
            records = [json.loads(line) for line in f if line.strip()]
        # Half of them the organisms never trained on (for --heldout-only), half they did (a
        # LoRA split needs both: it holds out the same participants the organisms did).
        seen = [(study, r["experiment"], str(r["participant"])) in trained for r in records]
        keep = [r for side in (False, True) for r in
                sorted((r for r, s in zip(records, seen) if s == side), key=lambda r: len(r["text"]))[:PER_STUDY // 2]]
        (root / study).mkdir()
        (root / study / "prompts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in keep))
    shutil.copy(PSYCH201 / "categories.csv", root / "categories.csv")
    return root


def _scaled(args: list[str], tree: Path) -> list[str]:
    """A command as the test runs it: local models, the small tree, smaller sizes, and a
    character cut where it scores real transcripts (the shipped sample is small already)."""
    out = []
    for i, word in enumerate(args):
        if i and args[i - 1] in SCALE and word.isdigit() and "--data" in args:
            word = str(min(int(word), SCALE[args[i - 1]]))
        word = HUB.sub(lambda m: "demo-base" if m[0].endswith("-Base") else "demo-chat", word)
        out.append(word.replace(SHARED_TREE, str(tree)))
    if out[0] in ("run", "compare-personas") and "--data" in out and "--max-chars" not in out:
        out += ["--max-chars", str(MAX_CHARS)]
    return out


def _python(body: str, tree: Path) -> str:
    from surrogate.organisms import resolve_model

    body = HUB.sub(lambda m: resolve_model("demo-base" if m[0].endswith("-Base") else "demo-chat"), body)
    body = body.replace(SHARED_TREE, str(tree))
    for name, most in PY_SCALE.items():
        body = re.sub(rf"\b{name}=(\d+)", lambda m, most=most, name=name: f"{name}={min(int(m[1]), most)}", body)
    return body


RUN_PAGES = [p for p in PAGES if any(b.runs for b in blocks(p))]


def test_every_page_that_runs_says_what_it_makes():
    assert {p.name for p in RUN_PAGES} == set(MADE)


@pytest.mark.slow
@pytest.mark.parametrize("page", RUN_PAGES, ids=lambda p: p.name)
def test_the_page_runs(page, small_tree, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    page_blocks = blocks(page)
    for b in page_blocks:
        if b.mark == "file":
            (tmp_path / b.arg).write_text(b.body)
    runner = CliRunner()
    for b in page_blocks:
        if not b.runs:
            continue
        if b.lang == "python":
            exec(compile(_python(b.body, small_tree), b.where(), "exec"), {"__name__": "__docs__"})
            continue
        for words in commands(b.body):
            args = _scaled(surrogate_args(words), small_tree)
            res = runner.invoke(app, args)
            assert res.exit_code == 0, (b.where(), args, res.output[-3000:], res.exception)
    for made in MADE[page.name]:
        assert (tmp_path / made).exists(), f"{page.name}: {made} was not made"
