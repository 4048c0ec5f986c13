"""Sources that disagree: each value with its citations and dates; updates newest first."""

from __future__ import annotations

import pytest

from rag.answer.conflicts import asked_slot, find_conflicts, holders, number_near, rare_terms
from rag.answer.extract import Sentence
from rag.answer.values import ArticleValue, amount, money_value, name_key, typed_kind
from rag.text.lexical import match_sequence
from rag.types import Chunk, Hit


def _hit(doc_id: str, date: str) -> Hit:
    return Hit(0, Chunk(doc_id, 0, 100, "", 20, title=doc_id, date=date), 0.5)


def _sentence(n: int, text: str, score: float = 0.6) -> Sentence:
    return Sentence(n, 0, len(text), text, score=score)


def test_what_is_asked():
    assert asked_slot("How many US troops were in Afghanistan?") == ("number", ["troop"], "US troops")
    assert asked_slot("How much money did the fund raise?")[0] == "number"  # a sum raised: not a price
    assert asked_slot("How much will the ferry terminal cost?") == ("money", [], "cost")
    assert asked_slot("When did the envoy meet the Taliban?") == ("date", [], "")
    assert asked_slot("Who mediated between Kabul and Islamabad?") == ("", [], "")


def test_the_number_is_the_one_standing_by_what_is_counted():
    assert number_near("In 2019 some 5,000 U.S. troops were withdrawn from 20 bases.", ["troop"]) == ("5,000", 5000.0)
    assert number_near("The 2,000 troops and 2 million dollars.", ["dollar"]) == ("2 million", 2e6)
    assert number_near("Troops left in 2019.", ["troop"]) is None  # a year is not a count


QUESTION = "How many US troops were in Afghanistan?"


def test_values_from_articles_of_different_days_are_an_update_newest_first():
    hits = [_hit("jan", "2019-01-23"), _hit("dec", "2018-12-31"), _hit("sep", "2019-09-17"), _hit("jan2", "2019-01-24")]
    sentences = [_sentence(1, "Trump ordered a halving of the 14,000 US troops in Afghanistan.", 0.7),
                 _sentence(2, "Around 7,000 U.S. troops are still stationed in Afghanistan.", 0.6),
                 _sentence(3, "The accord would see some 5,000 U.S. troops withdrawn from Afghanistan.", 0.55),
                 _sentence(4, "The 14,000 US troops in Afghanistan will be halved.", 0.6)]
    (conflict,) = find_conflicts(QUESTION, sentences, hits)
    assert conflict.kind == "update" and conflict.what == "the number of US troops"
    assert [(v.value, v.as_of, v.citations) for v in conflict.values] == [
        ("5,000", "2019-09-17", [3]), ("14,000", "2019-01-24", [1, 4]), ("7,000", "2018-12-31", [2])]
    assert conflict.to_dict()["values"][1]["doc_ids"] == ["jan", "jan2"]


def test_values_reported_on_the_same_days_disagree():
    hits = [_hit("a", "2023-02-07"), _hit("b", "2023-02-07")]
    sentences = [_sentence(1, "At least 5,000 people died in the earthquake in Turkey, officials said."),
                 _sentence(2, "The earthquake in Turkey killed 4,300 people, rescuers said, as 4,300 people died.")]
    (conflict,) = find_conflicts("How many people died in the earthquake in Turkey?", sentences, hits)
    assert conflict.kind == "disagree" and {v.value for v in conflict.values} == {"5,000", "4,300"}


@pytest.mark.parametrize("texts", [
    ["About 7,000 U.S. troops are in Afghanistan.", "Some 7,000 US troops remain in Afghanistan."],  # they agree
    ["Troops in Afghanistan rose from 7,000 U.S. troops to 14,000 U.S. troops.", "Around 7,000 U.S. troops are in Afghanistan."],
])
def test_agreeing_sources_and_an_article_that_tells_of_two_counts_are_not_a_conflict(texts):
    hits = [_hit("a", "2019-01-01"), _hit("b", "2019-06-01")]
    assert find_conflicts(QUESTION, [_sentence(i + 1, t) for i, t in enumerate(texts)], hits) == []


def test_sentences_far_below_the_best_do_not_count():
    hits = [_hit("a", "2019-01-01"), _hit("b", "2019-06-01")]
    sentences = [_sentence(1, "About 7,000 U.S. troops are in Afghanistan.", 0.8),
                 _sentence(2, "Some 9,000 US troops were in Afghanistan in 2011.", 0.3)]
    assert find_conflicts(QUESTION, sentences, hits) == []


@pytest.mark.slow
def test_the_troop_count_changed_over_time_in_the_shipped_articles(real_rag):
    answer = real_rag.ask(QUESTION)
    (conflict,) = answer.conflicts
    assert conflict.kind == "update"
    values = [v.value for v in conflict.values]
    assert {"14,000", "7,000"} <= set(values)
    assert [v.as_of for v in conflict.values] == sorted((v.as_of for v in conflict.values), reverse=True)
    for v in conflict.values:
        for n in v.citations:
            assert v.value in real_rag.document(answer.citations[n - 1].doc_id)["text"]
    assert answer.to_dict()["conflicts"][0]["kind"] == "update"
    assert "conflicts" not in real_rag.ask("Who offered to mediate between Kabul and Islamabad?").to_dict()


def test_death_tolls_offices_and_measures_are_asked_slots():
    assert asked_slot("What is the death toll of the Maui wildfires?")[::2] == ("number", "deaths")
    assert asked_slot("How many people died in the Seoul crush?")[::2] == ("number", "deaths")
    assert asked_slot("How many people were wounded in the parade shooting?") == ("number", ["wound", "peopl"], "people wounded")
    assert asked_slot("Who is the prime minister of the United Kingdom?") == ("name", ["prime", "minist"], "prime minister")
    assert asked_slot("Who leads New Zealand as prime minister?")[::2] == ("name", "prime minister")
    assert asked_slot("What category was Hurricane Idalia?") == ("measure", [], "category")
    assert asked_slot("What were Hurricane Idalia's maximum sustained winds?") == ("measure", [], "wind speed")


def test_death_toll_numbers_in_words_and_after_the_toll():
    dead = asked_slot("What is the death toll?")[1]
    assert number_near("The death toll rose to 99 on Tuesday.", dead) == ("99", 99.0)
    assert number_near("The death toll from Ian stood at 101, officials said.", dead) == ("101", 101.0)
    assert number_near("Seven people were killed at the parade.", dead) == ("Seven", 7.0)
    assert number_near("The quake killed at least 5,000 in Turkey.", dead) == ("5,000", 5000.0)
    assert number_near("One of the rescuers said 2023 was hard.", dead) is None  # "one" and a year are no count


def test_office_holders_now_not_former_ones():
    assert holders("UK Prime Minister Liz Truss spoke as former Prime Minister Boris Johnson watched.",
                   "prime minister") == ["Liz Truss"]
    assert holders("Photos: Former House Speaker Kevin McCarthy", "Speaker") == []
    assert holders("Chris Hipkins, New Zealand's prime minister, said so.", "prime minister") == ["Chris Hipkins"]


def test_the_holder_of_another_countrys_office_or_a_titles_tail_is_not_a_holder():
    where = set(match_sequence("Who leads New Zealand as prime minister?"))
    text = "New Zealand Prime Minister Jacinda Ardern met Australian Prime Minister Anthony Albanese."
    assert holders(text, "prime minister", where) == ["Jacinda Ardern"]
    assert holders(text, "prime minister") == ["Jacinda Ardern", "Anthony Albanese"]  # no question: every holder
    where = set(match_sequence("Who is the Speaker of the US House?"))
    text = "Tennessee House Speaker Cameron Sexton, Republican House Speaker Mike Johnson and Speaker Pro Tem Jan Smith."
    assert holders(text, "Speaker", where) == ["Mike Johnson"]
    assert holders("Elizabeth Truss MP, prime minister, and Prime Minister Truss", "prime minister") == ["Truss", "Elizabeth Truss"]


def test_a_common_word_beside_a_rare_one_is_no_topic():
    idf = {"zealand": 6.0, "new": 1.5}.get
    assert rare_terms("Who leads New Zealand as prime minister?", lambda t: idf(t, 0.1)) == ["zealand"]  # not "lead"


def test_each_article_gives_one_value_its_headline_first():
    question = "What is the death toll of the Maui wildfires?"
    hits = [Hit(0, Chunk("a", 0, 100, "Officials in Maui said 3 people were found.", 20,
                         title="Maui wildfire updates: Death toll rises to 93", date="2023-08-12"), 0.5),
            Hit(1, Chunk("b", 0, 100, "At least 36 people have died in the Maui fire.", 20,
                         title="Hawaii fire updates", date="2023-08-09"), 0.4),
            Hit(2, Chunk("c", 0, 100, "In Texas 12 people died in a flood.", 20, title="Floods", date="2023-08-10"), 0.3)]
    (conflict,) = find_conflicts(question, [], hits, rare=["maui"])
    assert conflict.kind == "update" and conflict.what == "the number of deaths"
    # the headline's 93 for article a (not the 3 of its passage); Texas is not about Maui
    assert [(v.value, v.as_of, v.citations) for v in conflict.values] == [("93", "2023-08-12", [1]), ("36", "2023-08-09", [2])]


def test_a_conflict_cites_passages_past_the_shown_ones_and_they_are_shown(real_rag):
    answer = real_rag.ask(QUESTION, k=1)
    (conflict,) = answer.conflicts
    cited = {n for v in conflict.values for n in v.citations}
    assert max(cited) > 1 and max(cited) <= len(answer.citations)  # shown after the top passage
    for v in conflict.values:
        for n in v.citations:
            assert v.value in real_rag.document(answer.citations[n - 1].doc_id)["text"]


def test_a_question_in_other_words_asks_for_the_same_thing():
    """"U.S." for "US", "stationed" for "in": the same slot, so the same values are compared."""
    assert asked_slot("How many U.S. troops were stationed in Afghanistan?") == asked_slot(QUESTION)
    assert asked_slot("How many people were wounded in the parade shooting?")[1][0] == "wound"  # a count that is not "stationed"
    hits = [_hit("jan", "2019-01-23"), _hit("dec", "2018-12-31")]
    sentences = [_sentence(1, "Trump ordered a halving of the 14,000 US troops in Afghanistan.", 0.7),
                 _sentence(2, "Around 7,000 U.S. troops are still stationed in Afghanistan.", 0.6)]
    for question in (QUESTION, "How many U.S. troops were stationed in Afghanistan?"):
        (conflict,) = find_conflicts(question, sentences, hits)
        assert [v.value for v in conflict.values] == ["14,000", "7,000"]


def test_sums_of_money_are_compared_as_amounts_with_their_scale():
    hits = [_hit("march", "2024-03-01"), _hit("may", "2024-05-10"), _hit("june", "2024-06-02")]
    sentences = [_sentence(1, "The new ferry terminal will cost $51m, the council said.", 0.7),
                 _sentence(2, "The ferry terminal is now expected to cost 42 million dollars.", 0.65),
                 _sentence(3, "Building the ferry terminal will cost $42,000,000 in all.", 0.6)]
    (conflict,) = find_conflicts("How much will the ferry terminal cost?", sentences, hits)
    assert conflict.kind == "update" and conflict.what == "the cost"
    assert [(v.value, v.citations) for v in conflict.values] == [("42 million dollars", [2, 3]), ("$51m", [1])]
    agree = [_sentence(1, "The ferry terminal will cost $51m."), _sentence(2, "The ferry terminal costs 51 million dollars.")]
    assert find_conflicts("How much will the ferry terminal cost?", agree, hits[:2]) == []  # the same sum, written two ways


def test_the_troop_count_asked_in_other_words_is_found_too(real_rag):
    """ "U.S." for "US" and "stationed" for "in", as a reader might ask it: the same comparison."""
    answer = real_rag.ask("How many U.S. troops were stationed in Afghanistan?")
    (conflict,) = answer.conflicts
    assert conflict.kind == "update" and {"14,000", "7,000"} <= {v.value for v in conflict.values}


def test_a_rate_is_not_the_sum_asked_for():
    assert money_value("Musk agreed to pay $54.20 a share, or $44 billion in all.") == ("$44 billion", ("USD", 44e9))
    assert money_value("He paid $54.20 per share.") is None


@pytest.mark.parametrize("question, slot", [
    ("Who is Britain's PM?", ("name", "prime minister")),
    ("Who holds the gavel as Speaker of the U.S. House?", ("name", "Speaker")),
    ("How many people did Hurricane Ian kill?", ("number", "deaths")),
    ("How many lives were lost in the crowd crush?", ("number", "deaths")),
    ("What was the number of people shot dead at the parade?", ("number", "deaths")),
    ("How many fatalities had been reported by Thursday?", ("number", "deaths")),
])
def test_offices_and_death_tolls_asked_in_other_words(question, slot):
    assert asked_slot(question)[::2] == slot


def test_an_office_holder_change_is_an_update_whatever_the_wording():
    hits = [_hit("sep", "2022-09-06"), _hit("oct", "2022-10-25")]
    sentences = [_sentence(1, "Prime Minister Liz Truss took office on Tuesday."),
                 _sentence(2, "Prime Minister Rishi Sunak addressed the nation.")]
    for question in ("Who is the prime minister of the United Kingdom?", "Who is Britain's PM?"):
        (conflict,) = find_conflicts(question, sentences, hits)
        assert conflict.kind == "update" and [v.value for v in conflict.values] == ["Rishi Sunak", "Liz Truss"]


@pytest.mark.slow
def test_what_is_counted_may_be_named_in_other_words(real_rag):
    """"American soldiers" for "US troops", by the embeddings of the words; "wounded" is not "killed"."""
    embed = real_rag.embedder.encode_short
    hits = [_hit("jan", "2019-01-23"), _hit("dec", "2018-12-31")]
    troops = [_sentence(1, "Trump ordered a halving of the 14,000 US troops in Afghanistan.", 0.7),
              _sentence(2, "Around 7,000 U.S. troops are still stationed in Afghanistan.", 0.6)]
    (conflict,) = find_conflicts("How many American soldiers are in Afghanistan?", troops, hits, embed=embed)
    assert [v.value for v in conflict.values] == ["14,000", "7,000"]
    assert find_conflicts("How many American soldiers are in Afghanistan?", troops, hits) == []  # words alone: no
    casualties = [_sentence(1, "At least 30 people were wounded in the attack."),
                  _sentence(2, "Officials said 7 people were killed in the attack.")]
    assert find_conflicts("How many people were wounded in the attack?", casualties, hits, embed=embed) == []
    injured = [_sentence(1, "At least 30 people were wounded in the attack."),
               _sentence(2, "The attack left 41 people wounded, officials said later.")]
    (conflict,) = find_conflicts("How many people were injured in the attack?", injured, hits, embed=embed)
    assert {v.value for v in conflict.values} == {"30", "41"}  # "injured" asked, "wounded" written


# ---------------------------------------------------------------- values read by the short-answer ranker


def _value(doc_id: str, written: str, n: int, date: str, probability: float = 0.5, label: str = "PERSON",
           sentence: str = "") -> ArticleValue:
    key = amount(written) if label in ("CARDINAL", "MONEY") else name_key(written)
    return ArticleValue(doc_id, key, written, n, date, probability, label, sentence or written)


def test_amounts_are_compared_as_numbers_with_their_scale_and_currency():
    assert amount("two dozen") == 24.0 and amount("5,000") == 5000.0 and amount("3.5 million") == 3.5e6
    assert amount("$51m") == amount("51 million dollars") == ("USD", 51e6)
    assert amount("between 5 and 7") is None  # not one number


def test_a_question_no_slot_reads_gets_its_conflict_from_the_ranked_values():
    """"Where was he arrested?" has no hand-written slot: each article's ranked answer is its value."""
    hits = [_hit("a", "2022-12-12"), _hit("b", "2022-12-12"), _hit("c", "2022-12-13")]
    ranked = [_value("a", "the Bahamas", 1, "2022-12-12", 0.4, "GPE"), _value("b", "Miami", 2, "2022-12-12", 0.3, "GPE"),
              _value("c", "Bahamas", 3, "2022-12-13", 0.25, "GPE")]
    (conflict,) = find_conflicts("Where was Sam Bankman-Fried arrested?", [], hits, ranked=ranked)
    assert conflict.kind == "disagree" and conflict.what == "the place"
    assert [(v.value, v.citations) for v in conflict.values] == [("the Bahamas", [1, 3]), ("Miami", [2])]  # variants merged


@pytest.mark.parametrize("ranked", [
    # the sources agree, in other spellings
    [_value("a", "Liz Truss", 1, "2022-09-06"), _value("b", "Truss", 2, "2022-09-08"), _value("c", "Prime Minister Truss", 3, "2022-09-09")],
    # the second value is not likely enough
    [_value("a", "Liz Truss", 1, "2022-09-06"), _value("b", "Boris Johnson", 2, "2022-10-25", 0.05)],
    # a place is not another answer than a person
    [_value("a", "Liz Truss", 1, "2022-09-06"), _value("b", "Downing Street", 2, "2022-10-25", 0.3, "FAC")],
])
def test_ranked_values_that_agree_or_are_unlikely_or_of_another_kind_are_not_a_conflict(ranked):
    hits = [_hit("a", "2022-09-06"), _hit("b", "2022-09-08"), _hit("c", "2022-09-09")]
    assert find_conflicts("Who moved into Number 10?", [], hits, ranked=ranked) == []


def test_the_ranker_chooses_the_office_holder_where_the_pattern_finds_two():
    """The slot reads "Prime Minister Liz Truss"; a sentence giving the office to two names gives the
    slot nothing, and the ranker's choice among them is the article's value: a name change over
    time. A name the sentence does not give the office is not taken from the ranker."""
    hits = [_hit("sep", "2022-09-06"), _hit("oct", "2022-10-25")]
    both = "Prime Minister Rishi Sunak welcomed Prime Minister Anthony Albanese to London."
    sentences = [_sentence(1, "Prime Minister Liz Truss took office on Tuesday."), _sentence(2, both)]
    question = "Who is the prime minister of the United Kingdom?"
    ranked = [_value("oct", "Rishi Sunak", 2, "2022-10-25", 0.45, sentence=both)]
    (conflict,) = find_conflicts(question, sentences, hits, ranked=ranked)
    assert conflict.kind == "update" and [v.value for v in conflict.values] == ["Rishi Sunak", "Liz Truss"]
    assert find_conflicts(question, sentences, hits) == []  # the slot alone: one value
    elsewhere = [_value("oct", "Rishi Sunak", 2, "2022-10-25", 0.45, sentence="Rishi Sunak became prime minister.")]
    assert find_conflicts(question, sentences, hits, ranked=elsewhere) == []


def test_a_number_the_ranker_reads_counts_only_where_it_counts_what_is_asked():
    """"How many were wounded?": the ranker's "seven" of "killing seven and wounding dozens" is the
    dead, not the wounded; its "30" of "30 people were wounded" is."""
    hits = [_hit("a", "2022-07-04"), _hit("b", "2022-07-05")]
    question = "How many people were wounded in the parade shooting?"
    killed = "The gunman opened fire on the parade, killing seven and wounding dozens."
    wounded = "At least 30 people were wounded in the parade shooting."
    sentences = [_sentence(1, "Police said 24 people were wounded in the parade shooting.")]
    assert find_conflicts(question, sentences, hits, ranked=[_value("b", "seven", 2, "2022-07-05", sentence=killed,
                                                                     label="CARDINAL")]) == []
    (conflict,) = find_conflicts(question, sentences, hits, ranked=[_value("b", "30", 2, "2022-07-05", sentence=wounded,
                                                                            label="CARDINAL")])
    assert [v.value for v in conflict.values] == ["30", "24"]


@pytest.mark.slow
def test_the_ranker_reads_each_articles_answer_in_the_shipped_articles(real_rag, monkeypatch):
    """Each article's value: the ranker's most probable name of the kind asked, in the article's text."""
    import rag.answer.extract as extract
    from rag.answer.values import ranked_values

    seen = {}

    def observed(*args, **kwargs):
        seen["values"] = ranked_values(*args, **kwargs)
        return seen["values"]

    monkeypatch.setattr(extract, "ranked_values", observed)
    from rag import Rag

    ranker_rag = Rag(real_rag.settings.with_(rerank="none"))  # the tree ranker reads values with --rerank none
    answer = ranker_rag.ask("Who is Pakistan's foreign minister?")
    values = seen["values"]
    assert len({v.doc_id for v in values}) == len(values) >= 2  # one value per article
    for v in values:
        assert v.label == "PERSON" and 0.0 < v.probability < 1.0
        assert v.written in real_rag.document(v.doc_id)["text"]
    by_year = {v.date[:4]: v.written for v in values}
    assert "Qureshi" in by_year["2018"] and "Dar" in by_year["2025"]
    # and the answer shows the change of office holder, newest first
    (conflict,) = answer.conflicts
    assert conflict.kind == "update" and "Dar" in conflict.values[0].value and "Qureshi" in conflict.values[-1].value


def test_a_rare_word_the_articles_do_not_use_does_not_decide_the_topic():
    """"stampede" is rare because the articles write "crush": only words two passages hold count."""
    idf = {"itaewon": 8.0, "stamped": 9.0, "seoul": 5.0, "halloween": 6.0}.get
    question = "How many lives were lost in the Itaewon Halloween stampede in Seoul?"
    assert rare_terms(question, lambda t: idf(t, 1.0)) == ["stamped", "itaewon"]
    passages = ["The Itaewon crowd crush in Seoul killed 156.", "Halloween crowd crush in Itaewon: 154 dead in Seoul."]
    assert rare_terms(question, lambda t: idf(t, 1.0), passages) == ["itaewon", "seoul"]  # halloween: one passage


@pytest.mark.parametrize("question, kind", [
    ("Where was Sam Bankman-Fried arrested?", "place"), ("Which automaker recalled the cars?", "org"),
    ("Who won the election?", "person"), ("How old was the Queen when she died?", "number"),
    ("In which church was the Queen's state funeral held?", ""),  # a thing of no known kind: not compared
    ("Why did the talks fail?", ""),
])
def test_answers_are_compared_only_as_a_known_kind(question, kind):
    assert typed_kind(question) == kind
