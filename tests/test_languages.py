"""Articles in other languages: CJK questions found by BM25, sentences of other scripts never cut by a chunk."""

from __future__ import annotations

from pathlib import Path

import pytest

import rag
from rag.config import Settings
from rag.text.chunk import chunk_document, count_tokens, sentence_spans
from rag.text.lexical import bm25_tokens
from rag.types import Document

# ---------------------------------------------------------------- CJK search (BM25)

CJK_ARTICLES = {
    "zh_port": "南方港务局周一宣布，将投资七亿三千万美元扩建南部深水港。扩建工程包括两座新码头和一条防波堤，"
               "预计明年春天开工。港务局局长李明说，扩建完成后港口年吞吐量将增加一倍。",
    "zh_strike": "南部港口的码头工人周三开始罢工，要求提高工资和改善工作条件。罢工导致货物运输中断，"
                 "数百个集装箱滞留在码头。工会表示，如果资方不接受要求，罢工将持续到下周。",
    "zh_drought": "北方地区遭遇五十年来最严重的干旱，水库蓄水量降至历史最低水平。省政府宣布从下月起限制居民用水，"
                  "每户每天限量供应。气象部门预计未来一个月仍将少雨。",
    "zh_quake": "西部山区周二凌晨发生六点二级地震，造成至少十二人死亡，一百多人受伤。救援队伍已经抵达震中附近的村庄，"
                "数千名居民被转移到临时安置点。",
    "ja_port": "東京都は新しい港湾施設の建設に七百億円を投じると発表した。工事は来年春に始まり、三年で完成する予定だ。",
    "ja_heat": "大阪では記録的な猛暑が続き、市は熱中症への注意を呼びかけている。気温は三日連続で三十八度を超えた。",
    "ko_port": "정부는 남부 항구 확장에 7억 달러를 투자한다고 발표했다. 공사는 내년 봄에 시작된다.",
    "ko_vote": "서울에서 지방 선거 투표율이 역대 최고를 기록했다. 여당은 과반 의석을 잃었다.",
}


@pytest.fixture
def cjk_rag(fake_settings: rag.Settings, tmp_corpus: Path) -> rag.Rag:
    """The shipped (English) corpus plus Chinese, Japanese and Korean articles, indexed."""
    for doc_id, text in CJK_ARTICLES.items():
        (tmp_corpus / f"{doc_id}.txt").write_text(text + "\n", encoding="utf-8")
    r = rag.Rag(fake_settings)
    r.index()
    return r


@pytest.mark.parametrize(
    ("question", "doc_id"),
    [
        ("码头工人为什么罢工？", "zh_strike"),
        ("谁宣布投资扩建深水港？", "zh_port"),
        ("地震造成多少人死亡？", "zh_quake"),
        ("政府如何限制用水？", "zh_drought"),
        ("港湾施設の建設費はいくらですか？", "ja_port"),
        ("항구를 확장하는 데 얼마를 투자하나요?", "ko_port"),
    ],
)
def test_a_cjk_question_finds_its_article_first_by_bm25(cjk_rag, question, doc_id):
    hits = cjk_rag.search(question, k=3, retriever="bm25")
    assert hits, "BM25 found nothing for the question"
    assert hits[0].chunk.doc_id == doc_id, [h.chunk.doc_id for h in hits]


def test_english_search_is_unchanged_by_cjk_articles_in_the_index(cjk_rag):
    hits = cjk_rag.search("Who offered to mediate between Kabul and Islamabad?", k=3, retriever="bm25")
    assert hits and not hits[0].chunk.doc_id.startswith(("zh_", "ja_", "ko_"))
    assert bm25_tokens("The talks were mediated by the Ministers in Kabul") == ["talk", "were", "mediat", "minist", "kabul"]


def test_english_words_beside_chinese_keep_their_english_tokens():
    tokens = bm25_tokens("Ministers of Iran met 港务局 officials")
    assert [t for t in tokens if t.isascii()] == bm25_tokens("Ministers of Iran met officials")
    assert "港务" in tokens


# ---------------------------------------------------------------- sentences of other scripts

# Each script's sentences (with its own marks, quotes, numbers and an abbreviation that does
# not end a sentence), and what separates them in running text.
SCRIPTS = {
    "arabic": (" ", [
        "قال وزير الخارجية إن المحادثات ستستأنف الأسبوع المقبل في الدوحة.",
        "وأكد د. أحمد سالم، المتحدث باسم الوزارة، أن الوفد سيصل يوم الأحد.",
        "هل ستنجح المفاوضات هذه المرة؟",
        "وأعلنت الحكومة عن خطة لإعادة بناء الميناء بتكلفة 730 مليون دولار.",
        "وقال رئيس البلدية: «سنبدأ العمل فورا».",
        "وتعرض الميناء لأضرار كبيرة خلال العاصفة الأخيرة!",
    ]),
    "urdu": (" ", [
        "حکومت نے نئی بندرگاہ کی تعمیر کا اعلان کیا۔",
        "یہ منصوبہ تین سال میں مکمل ہوگا۔",
        "کیا اس سے روزگار بڑھے گا؟",
        "وزیر نے کہا کہ کام اگلے مہینے شروع ہوگا۔",
    ]),
    "chinese": ("", [
        "南方港务局周一宣布，将投资七亿三千万美元扩建南部深水港。",
        "扩建工程包括两座新码头和一条防波堤，预计明年春天开工。",
        "港口年吞吐量会增加一倍吗？",
        "“这是历史性的一天！”李明说。",
        "港务局局长李明在记者会上介绍了工程的细节。",
    ]),
    "japanese": ("", [
        "東京都は新しい港湾施設の建設に七百億円を投じると発表した。",
        "工事は来年春に始まり、三年で完成する予定だ。",
        "「住民の生活が良くなる！」と知事は述べた。",
        "費用は誰が負担するのか？",
    ]),
    "hindi": (" ", [
        "सरकार ने नए बंदरगाह के निर्माण की घोषणा की।",
        "यह परियोजना तीन साल में पूरी होगी।",
        "क्या इससे रोजगार बढ़ेगा?",
        "डॉ. शर्मा ने योजना का स्वागत किया।",
        "मंत्री ने कहा कि काम अगले महीने शुरू होगा!",
    ]),
}


def long_text(script: str, n: int = 60) -> tuple[str, list[tuple[int, int]]]:
    """``n`` sentences of ``script`` in running text (paragraphs of five), and each one's span."""
    sep, sentences = SCRIPTS[script]
    text, spans = "", []
    for i in range(n):
        if i:
            text += "\n\n" if i % 5 == 0 else sep
        sentence = sentences[i % len(sentences)]
        spans.append((len(text), len(text) + len(sentence)))
        text += sentence
    return text, spans


@pytest.mark.parametrize("script", SCRIPTS)
def test_sentences_of_other_scripts_are_split_where_they_end(script):
    text, spans = long_text(script, n=12)
    assert sentence_spans(text) == spans


@pytest.mark.parametrize("script", SCRIPTS)
@pytest.mark.parametrize(("max_tokens", "overlap"), [(Settings.chunk_tokens, Settings.chunk_overlap), (64, 16)])
def test_chunks_of_other_scripts_start_and_end_on_sentence_boundaries(script, max_tokens, overlap):
    text, spans = long_text(script)
    doc = Document(f"{script}-article", text, title=script)
    starts, ends = {s for s, _ in spans}, {e for _, e in spans}
    chunks = chunk_document(doc, max_tokens, overlap)
    assert len(chunks) > 3
    for c in chunks:
        assert doc.text[c.start : c.end] == c.text
        assert c.start in starts, c.text[:40]
        assert c.end in ends, c.text[-40:]
        assert count_tokens(c.text) <= max_tokens
    assert chunks[0].start == 0 and chunks[-1].end == len(text)


def test_a_cjk_sentence_longer_than_a_chunk_is_cut_after_a_clause():
    clause = "港务局宣布将投资七亿三千万美元扩建南部深水港，"
    sentence = clause * 12 + "工程明年开工。"
    doc = Document("zh-long", sentence + "第二句话很短。")
    assert count_tokens(sentence) > 96
    for c in chunk_document(doc, 96, 16):
        assert c.text.endswith(("，", "。")), c.text[-10:]
