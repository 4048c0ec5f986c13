"""Answers: citations, [n] markers, abstention, follow-up questions."""

from __future__ import annotations

import re

import pytest
from conftest import FakeEmbedder

from rag import Answer, Citation, Conversation, Filters, QuestionError, Rag
from rag.answer.extract import NOT_FOUND, Sentence, answer_type, compose, focus_phrase, score_sentences
from rag.answer.followup import Turn
from rag.text.lexical import match_tokens
from rag.types import ShortAnswer

QUESTION = "Who offered to mediate between Kabul and Islamabad?"
NONSENSE = "zzzz qqqq xxxx?"
MARKED = re.compile(r"(.+?) \[(\d+)\]")


def marked_sentences(answer: Answer) -> list[tuple[str, int]]:
    """The answer as (sentence, citation number) pairs; fails if any text is left unmarked."""
    pairs = [(m.group(1).strip(), int(m.group(2))) for m in MARKED.finditer(answer.answer)]
    assert MARKED.sub("", answer.answer).strip() == "", answer.answer
    return pairs


def assert_well_cited(answer: Answer, k: int) -> None:
    assert [c.n for c in answer.citations] == list(range(1, k + 1))
    pairs = marked_sentences(answer)
    assert pairs, answer.answer
    for sentence, n in pairs:
        assert 1 <= n <= len(answer.citations)
        assert sentence in answer.citations[n - 1].text  # the marker points at the passage it quotes


# ---------------------------------------------------------------- fake model


@pytest.mark.parametrize("question", ["", "   ", "\n\t", None])
def test_empty_question_is_refused(fake_rag, question):
    with pytest.raises(QuestionError, match="empty"):
        fake_rag.ask(question)


def test_empty_question_is_refused_before_touching_the_index(fake_settings):
    with pytest.raises(QuestionError):
        Rag(fake_settings).ask("  ")  # no index was built: the question is checked first


@pytest.mark.parametrize("k", [1, 3, 5])
def test_answer_cites_numbered_passages_and_markers_point_at_them(fake_rag, tmp_corpus, k):
    answer = fake_rag.ask(QUESTION, k=k)
    assert answer.question == QUESTION and not answer.abstained
    assert_well_cited(answer, k)
    for c in answer.citations:
        assert isinstance(c, Citation)
        assert (tmp_corpus / f"{c.doc_id}.txt").read_text(encoding="utf-8")[c.start : c.end] == c.text
        assert c.title and c.date and c.source
    assert "004_f1ed5df54c6c908a" in {c.doc_id for c in answer.citations}
    assert set(answer.timings_ms) == {"retrieve", "answer", "total"}
    assert 0 < answer.confidence <= 1.5


def test_answer_to_dict_has_the_documented_keys(fake_rag):
    answer = fake_rag.ask(QUESTION)
    d = answer.to_dict()
    short = {"short_answer"} if answer.short_line() else set()
    assert set(d) == {"question", "answer", "abstained", "citations", "evidence", "timings_ms"} | short
    if short:
        assert set(d["short_answer"]) == {"text", "n", "doc_id", "start", "end", "probability"}
    assert set(d["citations"][0]) >= {"n", "doc_id", "title", "date", "source", "start", "end", "text", "score"}


def test_evidence_gives_each_answer_sentence_span_in_its_article(fake_rag):
    answer = fake_rag.ask(QUESTION)
    assert answer.evidence and not answer.abstained
    for e in answer.evidence:
        text = fake_rag.document(e.doc_id)["text"]
        sentence = text[e.start:e.end]
        assert sentence and sentence in answer.answer  # the quoted sentence is exactly that span
        cited = answer.citations[e.n - 1]
        assert cited.doc_id == e.doc_id and cited.start <= e.start < e.end <= cited.end


def test_question_with_no_overlap_abstains(fake_rag):
    answer = fake_rag.ask(NONSENSE)
    assert answer.abstained is True
    assert answer.answer == NOT_FOUND and answer.answer.startswith("Not found in the corpus")
    assert answer.confidence < fake_rag.abstain_threshold
    assert not MARKED.search(answer.answer)  # no claim, so no marker


def test_the_abstain_threshold_decides(fake_rag):
    # confidence is the best sentence's score; the answer abstains when it is under the threshold.
    confidence = fake_rag.ask(QUESTION).confidence
    never = Rag(fake_rag.settings.with_(abstain_threshold=-1.0))
    always = Rag(fake_rag.settings.with_(abstain_threshold=confidence + 1e-6))
    assert not never.ask(NONSENSE).abstained
    assert always.ask(QUESTION).abstained
    assert not Rag(fake_rag.settings.with_(abstain_threshold=confidence - 1e-6)).ask(QUESTION).abstained


def test_filters_restrict_the_cited_passages(fake_rag):
    answer = fake_rag.ask("What did the Taliban delegation discuss in Tehran?", filters=Filters(until="2019-12-31"))
    assert answer.citations
    assert all(c.date <= "2019-12-31" for c in answer.citations)


def test_ask_records_the_turn_in_the_conversation(fake_rag):
    conversation = Conversation()
    first = fake_rag.ask(QUESTION, conversation=conversation)
    second = fake_rag.ask("whom did he call?", conversation=conversation)
    assert [t.question for t in conversation.turns] == [QUESTION, "whom did he call?"]
    assert first.standalone_question == QUESTION
    assert second.standalone_question != "whom did he call?" and "he" not in second.standalone_question.split()


# ---------------------------------------------------------------- pieces


def turn(question: str, answer: str, abstained: bool = False) -> Turn:
    return Turn(question, Answer(question=question, answer=answer, abstained=abstained))


def test_a_follow_up_pronoun_becomes_the_name_it_stands_for():
    conv = Conversation([turn(QUESTION, "Iran’s Foreign Minister Abbas Araghchi offered to mediate. [1]")])
    assert conv.standalone("whom did he call?") == "whom did Abbas Araghchi call?"
    assert conv.standalone("what did his ministry say?") == "what did Abbas Araghchi's ministry say?"


def test_she_goes_to_the_name_the_passages_call_she_not_the_short_answer():
    """The reader answered "Gregory Finch" to who won; the passages call Okafor "she"."""
    passage = ("Teresa Okafor won the Marlow mayoral election on Tuesday, defeating businessman Gregory Finch. "
               "Okafor will take office on January 1. She told supporters she would publish the contracts. "
               "Finch conceded and said he would help.")
    citation = Citation(1, "d", "t", "2022-11-09", "s", 0, len(passage), passage, 1.0)
    answer = Answer(question="Who won the Marlow mayoral election?", answer=passage.split(". ")[0] + ". [1]",
                    abstained=False, citations=[citation],
                    short_answer=ShortAnswer("Gregory Finch", 1, "d", 80, 93, 0.6))
    conv = Conversation([Turn(answer.question, answer)])
    assert conv.standalone("Whom did she defeat?") == "Whom did Teresa Okafor defeat?"
    assert conv.standalone("Which startup did her company buy?") == "Which startup did Teresa Okafor's company buy?"
    assert conv.standalone("Did he concede?") == "Did Gregory Finch concede?"


def test_what_about_asks_the_earlier_question_of_something_else():
    conv = Conversation([turn("How old is Teresa Okafor?", "Okafor, 48, grew up in Eastgate. [1]")])
    assert conv.standalone("What about Gregory Finch?") == "How old is Gregory Finch?"


def test_standalone_questions_are_left_as_typed():
    assert Conversation().standalone("whom did he call?") == "whom did he call?"
    conv = Conversation([turn(QUESTION, "Abbas Araghchi offered. [1]")])
    standalone = "Which Pakistani defence minister said the talks had hit a total impasse?"
    assert conv.standalone(standalone) == standalone


def test_a_short_follow_up_with_nothing_to_resolve_is_read_with_the_earlier_question():
    conv = Conversation([turn(QUESTION, NOT_FOUND, abstained=True)])
    assert conv.standalone("and then?") == f"and then? {QUESTION}"


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("Who offered to mediate?", "name"),
        ("Whom did he call?", "name"),
        ("Which country hosted the talks?", "name"),
        ("Where did the talks collapse?", "name"),
        ("How many troops remained?", "number"),
        ("What percentage of territory?", "number"),
        ("When did the delegation visit?", "date"),
        ("In what year was it signed?", "date"),
        ("Why did the talks fail?", ""),
    ],
)
def test_answer_type(question, kind):
    assert answer_type(question) == kind


def test_compose_adds_a_runner_up_only_if_it_scores_close_and_says_something_new():
    best = Sentence(1, 0, 10, "Araghchi offered to mediate between Kabul and Islamabad.", score=0.9)
    same = Sentence(2, 0, 10, "Araghchi offered mediation between Kabul and Islamabad.", score=0.85)
    new = Sentence(3, 0, 10, "He spoke by phone with Ishaq Dar about border tensions.", score=0.8)
    weak = Sentence(4, 0, 10, "Analysts warned about trade routes and security.", score=0.5)
    text, chosen = compose("Who offered to mediate?", [best, same, new, weak])
    assert chosen == [best, new]
    assert text == f"{best.text} [1] {new.text} [3]"
    assert compose("q", []) == ("", [])


def test_a_headline_that_scores_best_is_followed_by_its_articles_best_sentence():
    """A headline alone is not checkable evidence; its body's best sentence joins it even a
    little under the runner-up bar (where int8 and float vectors put it on either side)."""
    head = Sentence(1, 11, 91, "Iran Offers to Mediate Between Kabul and Islamabad", score=0.90, headline=True)
    other = Sentence(2, 0, 60, "Talks in Istanbul collapsed last week over border security issues.", score=0.70)
    body = Sentence(1, 93, 244, "Foreign Minister Abbas Araghchi expressed readiness to mediate.", score=0.68)
    text, chosen = compose("Who offered to mediate?", [head, other, body])
    assert chosen == [head, body] and "Araghchi" in text
    plain = Sentence(1, 11, 91, "Iran offered to mediate between Kabul and Islamabad on Sunday.", score=0.90)
    assert compose("Who offered to mediate?", [plain, other, body])[1] == [plain]  # the bar holds otherwise


@pytest.mark.parametrize(
    ("british", "american"),
    [("defence", "defense"), ("characterised", "characterized"), ("organisation", "organization"),
     ("colour", "color"), ("centre", "center"), ("travelled", "traveled"), ("analyse", "analyze")],
)
def test_british_and_american_spellings_match(british, american):
    assert match_tokens(f"The {british} of it") == match_tokens(f"The {american} of it")


@pytest.mark.parametrize(
    ("question", "focus"),
    [
        ("Which Pakistani foreign minister spoke by phone with Araghchi?", "Pakistani foreign minister"),
        ("Which Islamabad-based strategic affairs analyst warned of ISIS?", "Islamabad-based strategic affairs analyst"),
        ("Which two countries supported the talks?", "two countries"),
        ("In which city did the talks collapse?", "city"),
        ("What is the capital?", ""),
        ("Who mediated?", ""),
    ],
)
def test_focus_phrase(question, focus):
    assert focus_phrase(question) == focus


def _score(question, texts, dates=None, reference_day=""):
    sentences = [Sentence(1, i * 100, i * 100 + len(t), t, date=(dates or [""] * len(texts))[i])
                 for i, t in enumerate(texts)]
    return score_sentences(question, question, sentences, FakeEmbedder(), lambda term: 1.0, reference_day)


def test_the_name_beside_the_whole_focus_phrase_wins():
    question = "Which Pakistani foreign minister spoke by phone with Araghchi?"
    partial = "Iranian Foreign Minister Abbas Araghchi spoke by phone on Monday."
    whole = "Araghchi spoke by phone with Pakistani Foreign Minister Ishaq Dar."
    scored = {s.text: s for s in _score(question, [partial, whole])}
    assert scored[whole].appositive == 1.0
    assert scored[partial].appositive < 1.0
    assert _score(question, [partial, whole])[0].text == whole


def test_british_question_matches_american_sentence_and_derived_names():
    question = "How did Pakistan's defence minister describe the talks?"
    american = "Pakistani Defense Minister Khawaja Asif described the talks as a deadlock."
    other = "Pakistan's Foreign Minister Ishaq Dar described the outcome of the talks."
    scored = {s.text: s for s in _score(question, [american, other])}
    assert scored[american].phrase > scored[other].phrase  # "defence minister" side by side
    assert scored[american].lexical >= scored[other].lexical


def test_recency_orders_sentences_only_for_a_question_about_now():
    texts = ["Floods hit the northern province, officials said.", "Floods hit the northern province, officials said."]
    dates = ["2023-01-02", "2023-03-01"]
    recent = _score("Where did floods hit?", texts, dates, reference_day="2023-03-02")
    assert recent[0].date == "2023-03-01" and recent[0].score > recent[1].score
    undated = _score("Where did floods hit?", texts, dates)
    assert undated[0].score == undated[1].score


# ---------------------------------------------------------------- real model


@pytest.mark.slow
def test_real_answer_names_iran_and_cites_the_article(real_rag):
    answer = real_rag.ask(QUESTION)
    assert not answer.abstained
    assert "Iran" in answer.answer and "Araghchi" in answer.answer
    assert answer.citations[0].doc_id == "004_f1ed5df54c6c908a"
    assert_well_cited(answer, real_rag.settings.k)


def _installed_backends() -> list[str]:
    import importlib.util

    have = [b for b, mod in (("onnx-int8", "onnxruntime"), ("onnx", "onnxruntime"),
                             ("torch", "sentence_transformers")) if importlib.util.find_spec(mod)]
    return have


@pytest.mark.slow
@pytest.mark.parametrize("backend", _installed_backends())
def test_real_answer_names_araghchi_with_every_embedding_backend(backend, tmp_path):
    """The same answer whichever backend embedded the index and the question, on whatever CPU
    runs the tests (int8 vectors differ from float ones by cosine ~0.01)."""
    from rag import Rag, Settings
    from rag.config import DEFAULT_CORPUS

    r = Rag(Settings.from_env(corpus=(str(DEFAULT_CORPUS),), index_dir=str(tmp_path / backend),
                              model="all-MiniLM-L6-v2", embed=backend))
    r.index()
    answer = r.ask(QUESTION)
    assert "Iran" in answer.answer and "Araghchi" in answer.answer and "[1]" in answer.answer
    assert answer.citations[0].doc_id == "004_f1ed5df54c6c908a"


@pytest.mark.slow
@pytest.mark.parametrize("question", [NONSENSE, "Who won the 2018 FIFA World Cup?"])
def test_real_model_abstains_when_the_corpus_has_no_answer(real_rag, question):
    answer = real_rag.ask(question)
    assert answer.abstained and answer.answer == NOT_FOUND


@pytest.mark.slow
def test_real_follow_up_question_uses_the_conversation(real_rag):
    conversation = Conversation()
    first = real_rag.ask(QUESTION, conversation=conversation)
    assert "Araghchi" in first.answer
    second = real_rag.ask("which Pakistani minister did he speak with by phone?", conversation=conversation)
    assert second.standalone_question == "which Pakistani minister did Abbas Araghchi speak with by phone?"
    assert not second.abstained
    assert "Ishaq Dar" in second.answer
