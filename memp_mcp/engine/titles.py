"""A procedure's title and when-to-use, written from the task without a language model.

A task is often long: an issue with its template headings, a user's instruction that opens with a
role ("You are a security engineer."), code, paths and lists. The title is its first statement of
what to do, stripped of that boilerplate and clipped at a word; the when-to-use is the same opening,
a little longer. Both stay extractive: words of the task, in its order.
"""

from __future__ import annotations

import re

TITLE_CHARS = 80
WHEN_TO_USE_CHARS = 240

_FENCED = re.compile(r"```.*?(?:```|\Z)|~~~.*?(?:~~~|\Z)", re.DOTALL)
_TAG = re.compile(r"</?[A-Za-z][\w-]*(?:\s[^<>]*)?>")
_HEADING = re.compile(r"^\s*#{1,6}\s.*$", re.MULTILINE)
_RULE = re.compile(r"^\s*(?:[-*_=]\s*){3,}$", re.MULTILINE)
_LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+", re.MULTILINE)
# Phrases that wrap a task rather than state it.
_WRAPPERS = re.compile(
    r"^(?:consider the following (?:pr|pull request|issue)(?: description)?:?|here is (?:the|an?) (?:issue|task)"
    r"(?: description)?:?|(?:the )?(?:issue|task|problem)(?: description| statement)?:|description:?|summary:?)\s*",
    re.IGNORECASE,
)
# An opening sentence that says who the agent is, not what to do ("You are a software engineer.").
_ROLE = re.compile(
    r"^(?:you are|you're|act as)\s+(?:a|an|the|working|in|on)\b[^.!?\n]{0,160}[.!?](?:\s|$)", re.IGNORECASE
)
# A short "Label: value" line of a form (Role, Duration, Environment): about the task, not the task.
_LABEL_LINE = re.compile(r"^[A-Z][\w ]{0,20}:\s*(?:\S+\s*){0,6}$")
_LABEL = re.compile(r"^(?:[A-Z][a-z]+(?: [A-Z]?[a-z]+)?):\s+")
# A line that names the task outright ("## Task: Patch the server", "Goal: ...").
_NAMED_TASK = re.compile(
    r"(?:^|#{1,6})\s*(?:task|goal|objective)\s*:\s*(\S[^#\n]{3,}?)\s*(?=#|$)", re.IGNORECASE | re.MULTILINE
)
# A lead-in before the imperative ("Your task is to ", "You need to ", "Please ").
_LEAD_IN = re.compile(
    r"^(?:.{0,80}?,\s*(?:(?:and|so|then)\s+)?)?"
    r"(?:(?:your (?:task|job|goal) is to|you (?:need|have|are asked|are tasked|must|should) to"
    r"|you are tasked with|you (?:must|should|will)|i (?:want|need) you to|i'd like you to"
    r"|can you|could you|please|kindly)\s+)+",
    re.IGNORECASE,
)
# An issue template's section heading left at the end of a flattened title ("... Description").
_TRAILING_HEADING = re.compile(
    r"\s+(?:description|summary|details|problem|steps to reproduce|expected behaviou?r|actual behaviou?r)\s*:?\s*$",
    re.IGNORECASE,
)
_INLINE_MARK = re.compile(r"(?:^|\s)(?:#{1,6}|[-*+])\s+(?=\S)")
_INLINE_CODE = re.compile(r"`([^`\n]*)`")
# An absolute or home path, with the preposition that introduces it ("stored at /root/data").
_PATH = re.compile(
    r"(?:\b(?:at|in|into|from|to|under|as|and|or)\s+|,\s*)?(?<![\w.:/])['\"`]?(?:~|\.{1,2})?/[\w./~@+-]+['\"`]?",
    re.IGNORECASE,
)
_SENTENCE_END = re.compile(r"(?<=[^\s.][.!?])\s+(?=[A-Z\"'(`])|\n\s*\n|\n(?=\s*(?:[-*+]|\d+[.)])\s)")


def _paragraphs(task: str) -> str:
    text = _FENCED.sub("\n\n", task)
    text = _TAG.sub("\n", text)
    text = _HEADING.sub("\n", text)
    text = _RULE.sub("\n", text)
    return text


def _path_said(match: re.Match[str]) -> str:
    """A path goes with the word that introduces it ("stored at /root/data"); a path that is the subject
    of its sentence is named by its file's name."""
    text = match.group()
    if re.match(r"\s*(?:,|[A-Za-z]+\s)", text):
        return ""
    name = text.strip("'\"`").rstrip("/").rsplit("/", 1)[-1]
    return name if "." in name else ""


def _plain(sentence: str) -> str:
    """A sentence without paths, code quotes, emphasis or list markers, on one line."""
    sentence = _PATH.sub(_path_said, sentence)
    sentence = _INLINE_CODE.sub(lambda m: m.group(1), sentence)
    sentence = _LIST_ITEM.sub("", sentence)
    sentence = re.sub(r"\*\*|__|\*(?=\S)|(?<=\S)\*", "", sentence)
    sentence = " ".join(sentence.split())
    return re.sub(r"\s+([,.;:!?)])", r"\1", sentence).strip(" ,;:-")


def _sentences(task: str) -> list[str]:
    if "\n" not in task.strip():
        # Flattened onto one line, Markdown still marks where headings and list items began.
        task = _INLINE_MARK.sub("\n\n", task)
    text = _paragraphs(task).strip()
    out: list[str] = []
    for paragraph in re.split(r"\n\s*\n", text):
        paragraph = paragraph.strip()
        first, _, rest = paragraph.partition("\n")
        if rest and len(first) <= 150 and not re.search(r"[.!?:,;]\s*$", first):
            # A heading line (an issue's title) ends where its line does.
            out.extend(sentence for sentence in [_plain(first)] if sentence)
            paragraph = rest
        for line_group in _SENTENCE_END.split(paragraph.strip()):
            sentence = _plain(line_group)
            if sentence:
                out.append(sentence)
    return out


def _statement(task: str) -> list[str]:
    """The task's sentences from its first statement of work: wrappers, roles and lead-ins dropped."""
    sentences = _sentences(task)
    # Form lines, and headings of a word or two ("Examination Overview") before the text itself.
    while len(sentences) > 1 and (_LABEL_LINE.match(sentences[0]) or len(sentences[0].split()) <= 2):
        sentences = sentences[1:]
    while sentences:
        first = _LABEL.sub("", _WRAPPERS.sub("", sentences[0]).strip())
        first = _ROLE.sub("", first).strip() if _ROLE.match(first) else first
        if not first or (_ROLE.fullmatch(sentences[0] + " ") and first == ""):
            sentences = sentences[1:]
            continue
        sentences[0] = first
        break
    if sentences:
        lead = _LEAD_IN.match(sentences[0])
        if lead and len(sentences[0]) - lead.end() >= 12:
            sentences[0] = sentences[0][lead.end() :]
    return sentences


def clip_at_word(text: str, limit: int) -> str:
    """`text` cut at the last whole word within `limit` characters (and before a trailing clause mark)."""
    if len(text) <= limit:
        return text.rstrip(" .,;:")
    cut = text[: limit + 1]
    space = cut.rfind(" ")
    cut = cut[:space] if space > limit // 2 else text[:limit]
    return re.sub(r"\s+(?:and|or|of|to|the|a|an|in|on|for|with|by|at|from|that|which)$", "", cut).rstrip(" .,;:(-")


def _first_clause(sentence: str, limit: int) -> str:
    """The sentence up to its first colon or semicolon when that part says enough on its own."""
    for mark in (":", ";", " - ", " — "):
        head = sentence.split(mark, 1)[0]
        if head != sentence and len(head.split()) >= 4:
            sentence = head
            break
    return clip_at_word(sentence, limit)


def title_from_task(task: str) -> str:
    """A short, general title: the task's first statement of work, without its wrapping, at most TITLE_CHARS."""
    named = _NAMED_TASK.search(_FENCED.sub("", task))
    sentences = [_plain(named.group(1))] if named else _statement(task)
    if not sentences:
        return clip_at_word(" ".join(task.split()), TITLE_CHARS) or "Task"
    first = _TRAILING_HEADING.sub("", sentences[0])
    # A flattened issue keeps its template heading inside the first sentence ("Title Description Text...").
    first = re.split(r"\s+(?:Description|Summary|Details)\s*:?\s+(?=[A-Z])", first, maxsplit=1)[0]
    title = _first_clause(first, TITLE_CHARS)
    return _capitalised(title) or "Task"


def _capitalised(text: str) -> str:
    """The first letter upper case, unless the first word is code ("model_to_dict()")."""
    first = text.split(" ", 1)[0]
    return text[:1].upper() + text[1:] if first.isalpha() and first.islower() else text


def when_to_use_from_task(task: str) -> str:
    """When the procedure applies: the opening of the task's statement of work, at most WHEN_TO_USE_CHARS."""
    sentences = _statement(task)
    if not sentences:
        return "Tasks like: " + clip_at_word(" ".join(task.split()), WHEN_TO_USE_CHARS)
    sentences[0] = _TRAILING_HEADING.sub("", sentences[0])
    text = ""
    for sentence in sentences:
        if text and len(text) + len(sentence) + 1 > WHEN_TO_USE_CHARS:
            break
        text = f"{text} {sentence}".strip()
    text = _TRAILING_HEADING.sub("", text)
    return "Tasks like: " + clip_at_word(_capitalised(text), WHEN_TO_USE_CHARS)
