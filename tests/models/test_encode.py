"""Response tokens come from character offsets with forced boundaries, whatever merges."""

import numpy as np
import pytest
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from surrogate.data import Transcript, load, prepare_transcript
from surrogate.models import (
    EncodingError,
    TranscriptEncoder,
    chat_messages,
    render_chat,
)
from surrogate.testing.tiny import train_tokenizer


def _check_exact(tokenizer, encoder, transcript, system=None):
    """Each response's tokens spell exactly its text; all tokens spell the whole string."""
    enc = encoder.encode(transcript, system)
    text, spans, add_special = encoder.text_and_spans(transcript, system)
    backend = encoder._backend
    ids = enc.ids.tolist()
    if add_special and tokenizer.bos_token_id is not None and ids[0] == tokenizer.bos_token_id:
        ids = ids[1:]  # the BOS the tokenizer added
    assert backend.decode(ids, skip_special_tokens=False) == text
    for r, (s, e) in enumerate(spans):
        ids = enc.ids[enc.response_of == r].tolist()
        assert ids, f"response {r} has no tokens"
        assert backend.decode(ids, skip_special_tokens=False) == text[s:e]
        positions = np.nonzero(enc.response_of == r)[0]
        assert (np.diff(positions) == 1).all(), "a response's tokens are contiguous"
    return enc


def _edge_merging_tokenizer(corpus):
    """Byte-level BPE with no pre-tokenizer split: it learns '<<J>>.'-style merges that cross
    response edges on both sides."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(corpus, trainers.BpeTrainer(
        vocab_size=3000, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    return PreTrainedTokenizerFast(tokenizer_object=tok)


@pytest.fixture(scope="module")
def thoma(psych201):
    return [prepare_transcript(p.text) for p in load(psych201 / "thoma2025problearn", max_participants=3)]


def test_qwen_tokenizer_merges_close_marker_with_next_char(qwen_dir, thoma, reference):
    """The test tokenizer really merges '>>' with the next character, which breaks the
    reference's marker search; our labels stay exact."""
    tok = AutoTokenizer.from_pretrained(qwen_dir)
    t = thoma[0]
    assert ">>." in tok.convert_ids_to_tokens(tok(t.text).input_ids)
    enc = _check_exact(tok, TranscriptEncoder(tok, chat=False), t)
    assert enc.ids.tolist() == tok(t.text).input_ids  # no edge straddled: ids are unchanged
    labels = reference.response_labels(tok(t.text).input_ids, tok(" <<", add_special_tokens=False).input_ids,
                                       tok(">>", add_special_tokens=False).input_ids)
    ref_labelled = sum(x != -100 for x in labels)
    assert ref_labelled > 10 * (enc.response_of >= 0).sum()  # the reference mislabels context


@pytest.mark.slow
def test_boundaries_are_forced_inside_merged_tokens(corpus, thoma):
    tok = _edge_merging_tokenizer(corpus)
    naive = tok.convert_ids_to_tokens(tok(thoma[0].text).input_ids)
    text = thoma[0].text
    # Some naive tokens straddle a response edge.
    enc_naive = tok(text, return_offsets_mapping=True)
    edges = {p for span in thoma[0].spans for p in span}
    straddling = [t for t, (s, e) in zip(naive, enc_naive.offset_mapping) if any(s < p < e for p in edges)]
    assert straddling, "the tokenizer should merge across edges for this test to mean anything"
    for t in thoma:
        _check_exact(tok, TranscriptEncoder(tok, chat=False), t)


def test_metaspace_tokenizer_with_merged_edges(corpus, thoma):
    """SentencePiece-style '▁' tokenizers would add a prefix to every piece; the encoder
    falls back to the BPE model alone and stays exact."""
    tok = train_tokenizer(corpus, vocab_size=3000, style="metaspace")
    for t in thoma:
        _check_exact(tok, TranscriptEncoder(tok, chat=False), t)


def test_trimmed_offsets_do_not_hide_leading_spaces(corpus):
    from tokenizers import processors

    tok = train_tokenizer(corpus, vocab_size=2000, style="qwen")
    tok.backend_tokenizer.post_processor = processors.ByteLevel(trim_offsets=True)
    t = prepare_transcript("You answer << think>> and << -3>> then <<  x>> end.")
    assert t.responses == (" think", " -3", "  x")
    _check_exact(tok, TranscriptEncoder(tok, chat=False), t)


@pytest.mark.parametrize("fixture", ["qwen_dir", "llama_dir"])
def test_chat_template_spans(request, fixture, thoma):
    tok = AutoTokenizer.from_pretrained(request.getfixturevalue(fixture))
    encoder = TranscriptEncoder(tok, chat=True)
    for t in thoma:
        _check_exact(tok, encoder, t)
        _check_exact(tok, encoder, t, system="You are a 30-year-old woman.")


def test_chat_messages_follow_the_paper(reference, thoma):
    for t in thoma:
        assert chat_messages(t) == reference.chat_messages(t.text + ".")


def test_trimming_template_locates_stripped_contents(llama_dir):
    tok = AutoTokenizer.from_pretrained(llama_dir)
    t = prepare_transcript("Pick one: <<-3>> then << think>> done")
    text, spans = render_chat(tok, chat_messages(t))
    assert [text[s:e] for s, e in spans] == ["-3", "think"]


def test_template_that_rewrites_content_is_refused(qwen_dir):
    tok = AutoTokenizer.from_pretrained(qwen_dir)
    tok.chat_template = ("{%- for m in messages -%}{{ m['role'] }}: {{ m['content'] | upper }}\n"
                        "{%- endfor -%}")
    with pytest.raises(EncodingError, match="rewrites assistant contents"):
        render_chat(tok, chat_messages(prepare_transcript("a <<b>> c")))


def test_token_budget_drops_whole_responses(qwen_dir, thoma):
    tok = AutoTokenizer.from_pretrained(qwen_dir)
    encoder = TranscriptEncoder(tok, chat=False)
    full = encoder.encode(thoma[0])
    cut = encoder.encode(thoma[0], max_tokens=len(full) // 2)
    assert len(cut) == len(full) // 2
    kept = set(cut.response_of[cut.response_of >= 0].tolist())
    assert kept and cut.token_truncated
    assert kept.isdisjoint(cut.token_truncated)
    assert sorted(kept | set(cut.token_truncated)) == list(range(full.n_responses))
    for r in kept:  # kept responses are whole
        assert (cut.response_of == r).sum() == (full.response_of == r).sum()


def _growing(transcript):
    """The transcript as it stood after each response: text up to that response's '>>'."""
    for r, (_, end) in enumerate(transcript.spans):
        text = transcript.text[: end + 2]
        spans = transcript.spans[: r + 1]
        yield Transcript(text=text, spans=spans, all_responses=tuple(text[s:e] for s, e in spans),
                         prefix_chars=transcript.prefix_chars)


@pytest.fixture(scope="module")
def growing_cases(psych201):
    """Real transcripts with many responses from three studies."""
    out = []
    for study in ("thoma2025problearn", "guenther2022relational", "busch2024_stroop"):
        out += [prepare_transcript(p.text) for p in load(psych201 / study, max_participants=2)]
    return out


@pytest.mark.parametrize("which, chat, system", [
    ("qwen", False, None),
    *(pytest.param(*case, marks=pytest.mark.slow) for case in [
        ("llama", False, None), ("metaspace", False, None),
        ("qwen", True, "You are a 34-year-old woman."), ("llama", True, None)])])
def test_growing_context_equals_full_encoding_at_every_response(request, corpus, growing_cases,
                                                                which, chat, system):
    """Re-tokenizing only a window at the end gives, at every response, exactly the context
    a full encoding gives; it tokenizes a small fraction of the characters."""
    from surrogate.models._encode import GrowingContext

    tok = (train_tokenizer(corpus, vocab_size=3000, style="metaspace") if which == "metaspace"
           else AutoTokenizer.from_pretrained(request.getfixturevalue(f"{which}_dir")))
    encoder = TranscriptEncoder(tok, chat=chat)
    windowed = full = 0
    for transcript in growing_cases:
        growing = GrowingContext(encoder)
        steps = list(_growing(transcript))[:120]
        for t in steps:
            got = growing.context(t, system)
            enc = encoder.encode(t, system)
            want = enc.ids[: int(np.argmax(enc.response_of == len(t.spans) - 1))]
            np.testing.assert_array_equal(got, want)
            full += len(encoder.text_and_spans(t, system)[0])
        assert growing.consistent and growing.agrees_with(steps[-1], system)
        assert growing.full_encodings == 1  # the first response only
        windowed += growing.encoded_chars
    assert windowed < 0.1 * full


def test_growing_context_notices_a_rewritten_history(qwen_dir, thoma):
    """A transcript whose earlier text changes is encoded in full, and the chain is marked
    as not extending the contexts it already gave."""
    from surrogate.models._encode import GrowingContext

    encoder = TranscriptEncoder(AutoTokenizer.from_pretrained(qwen_dir), chat=False)
    steps = list(_growing(thoma[0]))[:6]
    growing = GrowingContext(encoder)
    for t in steps[:5]:
        growing.context(t)
    assert growing.consistent and growing.full_encodings == 1
    head = "A different opening line.\n"
    last = steps[5]
    changed = Transcript(text=head + last.text, spans=tuple((s + len(head), e + len(head)) for s, e in last.spans),
                         all_responses=last.all_responses, prefix_chars=0)
    growing.context(changed)
    assert growing.full_encodings == 2 and not growing.consistent
    assert not growing.agrees_with(changed)
