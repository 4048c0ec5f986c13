"""The learned reader: the shipped model loads offline, ranks answers first, and ``ask`` uses it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import REAL_MODEL

import rag
from rag.answer import extract as extractive
from rag.embed.base import resolve_model_path
from rag.errors import UnknownModelError
from rag.search.rerank import SHIPPED_READER, CrossEncoderReader, get_reader
from rag.tools.train_data import YearData, content_overlap, mine_year
from rag.tools.train_reader import train_reader
from rag.types import Document

QUESTION = "Who offered to mediate between Kabul and Islamabad?"
ANSWER = ("Iran’s Foreign Minister Abbas Araghchi expressed readiness to mediate between Kabul and Islamabad "
          "after their recent peace talks in Istanbul collapsed.")


def test_shipped_reader_loads_offline_with_its_card_and_threshold():
    cfg = json.loads((SHIPPED_READER / "reader.json").read_text())
    assert cfg["type"] == "rag-reader" and cfg["base_model"] == "all-MiniLM-L6-v2"
    assert (SHIPPED_READER / "MODEL_CARD.md").is_file()
    reader = get_reader()
    assert reader.threshold is not None and 0.0 < reader.threshold < 1.0
    # Only the trained tensors ship: the word embeddings come from the bundled model.
    from safetensors.numpy import load_file

    assert "embeddings.word_embeddings.weight" not in load_file(str(SHIPPED_READER / cfg["weights"]))


def test_a_relevant_sentence_scores_above_irrelevant_ones():
    reader = get_reader()
    scores = reader.score(QUESTION, [
        ANSWER,
        "The Taliban delegation visited Tehran on Monday for talks with Iranian officials.",
        "Shares of technology companies fell sharply on Wall Street after the earnings reports.",
    ])
    assert scores.shape == (3,) and np.all((scores > 0) & (scores < 1))
    assert scores[0] > scores[1] > scores[2]


def test_scores_do_not_depend_on_batching_or_order():
    reader = get_reader()
    texts = [ANSWER, "A short one.", "Pakistan and Afghanistan held talks in Istanbul that collapsed after days of talks."] * 7
    together = reader.logits(QUESTION, texts)
    alone = np.array([reader.logits(QUESTION, [t])[0] for t in texts[:3]])
    assert np.allclose(together[:3], alone, atol=1e-4)


@pytest.mark.slow
def test_numpy_reader_matches_torch():
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModel, AutoTokenizer

    cfg = json.loads((SHIPPED_READER / "reader.json").read_text())
    base = resolve_model_path(cfg["base_model"])
    model = AutoModel.from_pretrained(str(base), add_pooling_layer=False)
    model.encoder.layer = model.encoder.layer[: cfg["num_layers"]]
    trained = load_file(str(SHIPPED_READER / cfg["weights"]))
    model.load_state_dict({k: v.float() for k, v in trained.items() if not k.startswith("head.")}, strict=False)
    tok = AutoTokenizer.from_pretrained(str(base))
    texts = [ANSWER, "The weather in Kabul was cold."]
    enc = tok([QUESTION] * 2, texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        h = model(**enc).last_hidden_state
        m = enc["attention_mask"].unsqueeze(-1).float()
        expected = ((h * m).sum(1) / m.sum(1)) @ trained["head.weight"].float().T + trained["head.bias"].float()
    assert np.allclose(get_reader().logits(QUESTION, texts), expected[:, 0].numpy(), atol=1e-3)


@pytest.mark.slow
def test_a_hugging_face_cross_encoder_folder_loads_and_matches_torch(tmp_path: Path):
    """A user-brought BertForSequenceClassification (as ms-marco-MiniLM-L6-v2 is) runs in numpy."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    base = resolve_model_path(REAL_MODEL)
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, num_labels=1)
    model = BertForSequenceClassification(config).eval()
    model.save_pretrained(str(tmp_path), safe_serialization=True)
    shutil.copy(base / "tokenizer.json", tmp_path / "tokenizer.json")
    reader = CrossEncoderReader.load(tmp_path)
    texts = [ANSWER, "Something else entirely."]
    from transformers import AutoTokenizer

    enc = AutoTokenizer.from_pretrained(str(base))([QUESTION] * 2, texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = model(**enc).logits[:, 0].numpy()
    assert np.allclose(reader.logits(QUESTION, texts), expected, atol=1e-4)


def test_a_folder_that_is_no_cross_encoder_is_a_clear_error(tmp_path: Path):
    with pytest.raises(UnknownModelError, match="not a folder"):
        CrossEncoderReader.load(tmp_path / "missing")
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "t5"}))
    with pytest.raises(UnknownModelError, match="only BERT cross-encoders"):
        CrossEncoderReader.load(tmp_path)


def test_ask_uses_the_reader_and_rerank_none_the_hand_written_scorer(fake_settings):
    learned = rag.Rag(fake_settings.with_(rerank="learned"))
    learned.index()
    assert learned.sentence_reader is not None and learned.abstain_threshold == get_reader().threshold
    answer = learned.ask(QUESTION)
    assert not answer.abstained and "Araghchi" in answer.answer and "[1]" in answer.answer
    hand = rag.Rag(fake_settings.with_(rerank="none"))
    assert hand.sentence_reader is None and hand.abstain_threshold == extractive.HAND_THRESHOLD
    old = hand.ask(QUESTION)
    assert old.citations and old.confidence != answer.confidence


def test_an_explicit_threshold_wins_over_the_calibrated_one(fake_rag):
    learned = fake_rag.settings.with_(rerank="learned")
    assert rag.Rag(learned.with_(abstain_threshold=0.9)).abstain_threshold == 0.9
    assert rag.Rag(learned.with_(abstain_threshold=2.0)).ask(QUESTION).abstained


@pytest.mark.slow
def test_the_kabul_question_is_answered_and_cited_with_the_learned_reader(real_rag):
    reader_rag = rag.Rag(real_rag.settings.with_(rerank="learned"))
    answer = reader_rag.ask(QUESTION)
    assert not answer.abstained and "Araghchi" in answer.answer and "[1]" in answer.answer
    assert answer.citations[0].doc_id == "004_f1ed5df54c6c908a"


def test_rerank_must_be_learned_or_none():
    with pytest.raises(rag.RagError, match="rerank must be"):
        rag.Settings.from_env(rerank="bert")


def test_mining_labels_answer_sentences_that_share_words_with_the_question():
    text = ("The summit was held in Geneva on Tuesday. Delegates from Iran and Pakistan met there to discuss trade. "
            "Geneva hotels were full all week. Iran's foreign minister Abbas Araghchi led the Iranian delegation.")
    other = "Markets in Tokyo rose on Tuesday as exporters gained. The yen fell against the dollar in early trading."
    data = YearData("2030", [Document("a", text, title="Summit"), Document("b", other, title="Markets")], [
        {"id": "q1", "question": "Where did the delegates of Iran and Pakistan hold their summit?",
         "answers": ["Geneva"], "date": "2030-01-02", "answerable": True},
        {"id": "q2", "question": "Which planet did the probe reach?", "answers": ["Mars"], "date": "2030-01-03",
         "answerable": False},
    ])
    groups = {g["id"]: g for g in mine_year(data, chunk_tokens=32, chunk_overlap=0)}
    assert groups["q1"]["positives"] == ["The summit was held in Geneva on Tuesday."]
    assert "Geneva hotels were full all week." not in groups["q1"]["positives"] + groups["q1"]["negatives"]
    assert not groups["q2"]["positives"]
    assert content_overlap("Where was the summit?", "The summit was in Geneva.", ["Geneva"])
    assert not content_overlap("Where was the summit?", "Geneva hotels were full.", ["Geneva"])


@pytest.mark.slow
def test_training_writes_a_reader_that_loads(tmp_path: Path):
    groups = [{"question": "Which team does Damar Hamlin play for?",
               "positives": ["Damar Hamlin, the Buffalo Bills safety, collapsed on the field."],
               "negatives": ["The weather was sunny all day.", "Officials said the bridge would reopen."]}] * 4
    info = train_reader(groups, tmp_path / "r", epochs=1.0, save_every=0, log=lambda m: None)
    assert info["steps"] == 2 and info["pairs"] == 12
    reader = CrossEncoderReader.load(tmp_path / "r")
    assert reader.score("Which team?", ["The Bills.", "The weather."]).shape == (2,)
