import pytest

from surrogate.data import MarkerError, TruncationConfig, paper_clean, parse_spans, prepare_transcript
from tests.conftest import EQUIVALENCE_STUDIES, raw_records


def test_spans_locate_response_contents():
    text = "You press <<J>> and then <<F G>>."
    spans = parse_spans(text)
    assert [text[s:e] for s, e in spans] == ["J", "F G"]


@pytest.mark.parametrize("text, message", [
    ("a <<b <<c>> d>>", "nested"),
    ("a b>> c", "without an opening"),
    ("a <<b>> c <<d", "unclosed"),
    ("a <<>> c", "empty response"),
    ("a << >> c", "empty response"),
])
def test_malformed_markers_are_errors(text, message):
    with pytest.raises(MarkerError, match=message):
        prepare_transcript(text, config=TruncationConfig(paper_fixes=False))


def test_error_says_where():
    with pytest.raises(MarkerError, match=r"character 13 \(transcript line 2"):
        parse_spans("first\nab <<c <<d>>")


@pytest.mark.parametrize("study", EQUIVALENCE_STUDIES)
@pytest.mark.parametrize("max_chars", [32768, 5000, 777])
def test_cleaning_equals_the_papers(reference, study, max_chars):
    for record in raw_records(study, 3):
        assert paper_clean(record["text"], max_chars) == reference.clean_transcript(record["text"], max_chars)


def test_paper_fixes_are_applied():
    t = prepare_transcript("x <<skip>> y <<-3>> z <<think>> w <<L  >> More Details >> end")
    assert t.responses == ("skip", " -3", " think", "L")
    assert "More Details ->" in t.text


def test_cut_is_recorded_never_silent():
    raw = "Intro. " + " ".join(f"Trial {i}: you press <<{'J' if i % 2 else 'F'}>>." for i in range(50))
    cut = prepare_transcript(raw, config=TruncationConfig(max_chars=300))
    full = prepare_transcript(raw, config=TruncationConfig(max_chars=None))
    assert len(full.spans) == len(full.all_responses) == 50
    assert 0 < len(cut.spans) < 50
    assert cut.all_responses == full.all_responses
    assert cut.n_truncated == 50 - len(cut.spans)
    assert cut.responses == full.responses[: len(cut.spans)]
    assert cut.chars_cut == len(full.text) - len(cut.text)


def test_cut_inside_a_response_drops_it():
    raw = "a <<one>> b <<two>> c"
    t = prepare_transcript(raw, config=TruncationConfig(max_chars=len("a <<one>> b <<tw")))
    assert t.responses == ("one",) and t.n_truncated == 1


def test_prefix_counts_towards_the_cut_as_in_the_paper():
    raw = "a <<one>> b <<two>> c"
    prefix = "Interviewer: What is your age?\nInterviewee: 30\n\n"
    paper = prepare_transcript(raw, prefix, TruncationConfig(max_chars=len(raw)))
    alone = prepare_transcript(raw, prefix, TruncationConfig(max_chars=len(raw), count_prefix=False))
    assert paper.n_truncated > 0 and alone.n_truncated == 0
    assert alone.text.startswith(prefix) and alone.prefix_chars == len(prefix)


def test_markers_in_a_persona_prefix_are_rejected():
    with pytest.raises(MarkerError, match="persona prefix"):
        prepare_transcript("a <<b>>", prefix="Interviewee: <<x>>\n")
