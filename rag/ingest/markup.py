"""Text out of markup: a PDF page's wrapped lines joined into paragraphs, and Markdown read as
plain text (headings, emphasis, links, images, lists, fences and tables without their syntax).
Both give the text a document is indexed and cited as."""

from __future__ import annotations

import re

_PARAGRAPH_END = re.compile(r"""[.!?…。！？؟۔।॥]["'”’»)\]」』）]*$""")
_BULLET = re.compile(r"[•▪●◦‣■□*-]\s")  # not a dash: a wrapped line may start with one
_CJK_CHAR = re.compile(r"[\u3000-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef]")  # not Hangul: spaced
_SHORT_LINE = 0.6  # a line shorter than this share of the page's full lines is a heading or a paragraph's last


def join_lines(page: str) -> str:
    """A PDF page's text with the lines of each paragraph joined.

    A text layer breaks every visual line; read as they are, those breaks would end sentences in
    mid-phrase. A line break stays where a paragraph ends: a blank line, a line ending with
    sentence punctuation, a short line (a heading) before a capital, or a bullet next. A word
    hyphenated across lines ("gov-" / "ernment") is joined, and CJK lines join without a space.
    """
    lines = [line.strip() for line in page.split("\n")]
    lengths = sorted(map(len, lines))
    width = lengths[len(lengths) * 3 // 4]  # a full line (the longest but for one in four: not a wide header)
    out = lines[:1]
    for prev, line in zip(lines, lines[1:]):
        if not prev or not line or _PARAGRAPH_END.search(prev) or _BULLET.match(line) or (
            len(prev) < _SHORT_LINE * width and (line[0].isupper() or line[0].isdigit())
            and prev[-1] not in ",;:-–—(/&"
        ):
            out.append("\n" + line)
        elif prev.endswith("-") and len(prev) > 1 and prev[-2].isalpha() and line[0].islower():
            out[-1] = out[-1][:-1]
            out.append(line)
        elif (prev.endswith(("-", "/")) and not prev[-2:-1].isspace()) or (
            _CJK_CHAR.match(prev[-1]) and _CJK_CHAR.match(line[0])
        ):
            out.append(line)
        else:
            out.append(" " + line)
    return "".join(out)


_MD_ESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!|>~<])")
_MD_INLINE = [  # (pattern, replacement), in order; escaped characters are out of the way by then
    (re.compile(r"<!--.*?-->", re.S), ""),
    (re.compile(r"!\[[^\]]*\](\((?:[^()\s]|\([^()\s]*\))*(?:\s+[\"'(][^)]*)?\)|\[[^\]]*\])"), ""),  # images
    (re.compile(r"\[([^\]]*)\]\((?:[^()\s]|\([^()\s]*\))*(?:\s+[\"'(][^)]*)?\)"), r"\1"),  # [text](url "title")
    (re.compile(r"\[\^[^\]]+\]"), ""),  # footnote markers
    (re.compile(r"\[([^\]]+)\]\[[^\]]*\]"), r"\1"),  # [text][ref]
    (re.compile(r"<((?:https?|ftp|mailto):[^>\s]+)>"), r"\1"),  # autolinks
    (re.compile(r"</?[A-Za-z][A-Za-z0-9-]*(?:\s[^<>]*)?/?>"), ""),  # inline HTML tags
    (re.compile(r"(`+)\s?(.+?)\s?\1"), r"\2"),  # inline code
    (re.compile(r"(?<![\w*])(\*\*|__)(?=\S)(.+?)(?<=\S)\1(?![\w*])"), r"\2"),  # strong
    (re.compile(r"(?<![\w*])\*(?=[^\s*])(.+?)(?<=[^\s*])\*(?![\w*])"), r"\1"),  # emphasis
    (re.compile(r"(?<![\w_])_(?=[^\s_])(.+?)(?<=[^\s_])_(?![\w_])"), r"\1"),
    (re.compile(r"~~(?=\S)(.+?)(?<=\S)~~"), r"\1"),  # strikethrough
]
_MD_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_MD_HEADING = re.compile(r"^ {0,3}#{1,6}(?:[ \t]+|$)(.*?)(?:[ \t]+#+)?[ \t]*$")
_MD_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_MD_RULE = re.compile(r"^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$")
_MD_ITEM = re.compile(r"^[ \t]*(?:[-*+•]|\d{1,9}[.)])[ \t]+(?:\[[ xX]\][ \t]+)?")
_MD_QUOTE = re.compile(r"^[ \t]{0,3}(?:>[ \t]?)+")
_MD_REF_DEF = re.compile(r"^ {0,3}\[[^\]]+\]:[ \t]+\S+.*$")
_MD_TABLE_RULE = re.compile(r"^[ \t]*\|?[ \t]*:?-{2,}:?[ \t]*(\|[ \t]*:?-{2,}:?[ \t]*)*\|?[ \t]*$")


def markdown_to_text(md: str) -> str:
    """The text a reader sees in a Markdown article: no ``#``, ``**``, ``[text](url)``, bullets,
    fences or tables' rules. Lines of one paragraph are joined (a single newline in Markdown is a
    space); headings, list items and paragraphs each stay on their own line, blank lines between
    paragraphs stay. Citation spans index into this text, which is the document's text.
    """
    md = md.replace("\r\n", "\n").replace("\r", "\n")
    md = _MD_ESCAPE.sub(lambda m: chr(0xE000 + ord(m.group(1))), md)  # escaped: not markup
    md = _MD_INLINE[0][0].sub("", md)  # comments may span lines
    blocks: list[list] = []  # [kind, text]: kind "para" (joinable), "line", "code" or "blank"
    fence = ""
    hard_break = False
    for raw in md.split("\n"):
        if fence:
            if raw.strip().startswith(fence):
                fence = ""
            else:
                blocks.append(["code", raw.rstrip()])
            continue
        m = _MD_FENCE.match(raw)
        if m:
            fence = m.group(1)[0] * 3
            continue
        if not raw.strip():
            blocks.append(["blank", ""])
            hard_break = False
            continue
        if _MD_REF_DEF.match(raw) or (_MD_TABLE_RULE.match(raw) and "|" in raw):
            continue
        m = _MD_SETEXT.match(raw)
        if m and blocks and blocks[-1][0] == "para":
            blocks[-1][0] = "line"  # the paragraph above is a heading
            continue
        if _MD_RULE.match(raw):
            continue
        line = _MD_QUOTE.sub("", raw)
        heading = _MD_HEADING.match(line)
        item = _MD_ITEM.match(line)
        if heading:
            blocks.append(["line", heading.group(1)])
        elif item:
            blocks.append(["para", line[item.end():].strip()])
        elif line.lstrip().startswith("|"):
            blocks.append(["line", " | ".join(c.strip() for c in line.strip().strip("|").split("|"))])
        elif blocks and blocks[-1][0] == "para" and not hard_break:
            blocks[-1][1] += " " + line.strip()
        else:
            blocks.append(["para", line.strip()])
        hard_break = raw.endswith("  ") or raw.endswith("\\")
    lines = [text if kind == "code" else _md_inline(text) for kind, text in blocks]
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines))
    return re.sub("[\ue000-\ue07f]", lambda m: chr(ord(m.group(0)) - 0xE000), text)


def _md_inline(text: str) -> str:
    for pattern, repl in _MD_INLINE[1:]:
        text = pattern.sub(repl, text)
    return re.sub(r"[ \t]{2,}", " ", text).strip()
