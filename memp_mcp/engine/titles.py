"""A procedure's title and when-to-use, written from the task without a language model.

A task is often long: an issue with its template headings, a user's instruction that opens with a
role ("You are a security engineer."), context, code, paths and lists. Both texts are extracted:

- The title is the sentence that asks, in the imperative: the first sentence of the opening that
  asks for work ("We need to generate X", "Your task is to fix Y", "Can you sort Z?", or a bare
  imperative), its lead-in dropped ("Generate X"); a heading that names the task ("# Task: ...")
  comes first; context before it ("The dataset is downloaded ...") is passed over. It is clipped to
  TITLE_CHARS at a phrase boundary (before "in", "for", "that", a comma), never inside a phrase.
- The when-to-use says the situation in general words: the kind of task (the ask, its specifics
  such as counts, versions and asides left out) and what it involves (files of a known name,
  formats, languages, named tools), never the prompt again.

A task in another language, or one that states a problem rather than asking, keeps its first clause.
The whole task stays the search key: these texts only label a procedure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from memp_mcp.engine.mentions import mentioned

TITLE_CHARS = 70
WHEN_TO_USE_CHARS = 200
# How far into a task the sentence that asks is looked for: beyond it, an imperative is a detail.
_OPENING_UNITS = 14

_FENCED = re.compile(r"```[^\n]*\n?(.*?)(?:```|\Z)|~~~[^\n]*\n?(.*?)(?:~~~|\Z)", re.DOTALL)
_TAG = re.compile(r"</?[A-Za-z][\w-]*(?:\s[^<>]*)?>")
_HEADING = re.compile(r"^\s*#{1,6}\s+(.*?)\s*#*\s*$")
_RULE = re.compile(r"^\s*(?:[-*_=]\s*){3,}$")
_LIST_ITEM = re.compile(r"^\s*(?:[-*+•]|\d+[.)]|[a-z][.)])\s+")
_INLINE_MARK = re.compile(r"(?:^|\s)(?:#{1,6}|[-*+])\s+(?=\S)")
_INLINE_CODE = re.compile(r"`([^`\n]*)`")
# An absolute or home path, with the words that introduce it ("stored at /root/data", "in ~/x").
_PATH = re.compile(
    r"(?:\b(?:(?:stored|located|saved|placed|kept|found|available|provided|given|written)\s+)?"
    r"(?:at|in|into|from|to|under|as|and|or|inside|within)\s+(?:the\s+(?:folder|directory|file|path)\s+)?|,\s*)?"
    r"(?<![\w.:/)])['\"`]?(?:~|\.{1,2})?/[\w./~@+-]+['\"`]?",
    re.IGNORECASE,
)
_SENTENCE_END = re.compile(r"(?<=[^\s.][.!?])\s+(?=[A-Z\"'(`])|(?<=[.!?])\s*\n")
# A line that names the task outright ("## Task: Patch the server", "Goal: ...").
_NAMED_TASK = re.compile(
    r"(?:^|#{1,6})\s*(?:task|goal|objective)\s*:\s*(\S[^#\n]{3,}?)\s*(?=#|$)", re.IGNORECASE | re.MULTILINE
)
# Phrases that wrap a task rather than state it.
_WRAPPERS = re.compile(
    r"^(?:consider the following (?:pr|pull request|issue)(?: description)?:?|here is (?:the|an?) (?:issue|task)"
    r"(?: description)?:?|(?:the )?(?:issue|task|problem)(?: description| statement)?:|description:?|summary:?)\s*",
    re.IGNORECASE,
)
# A "Label:" opening a line of a form ("Scenario: ...", "IMPORTANT: ...").
_LABEL = re.compile(r"^(?:[A-Z][a-z]+(?: [A-Za-z][a-z]+)?|[A-Z]{2,}):\s*")
# A short "Label: value" line of a form (Role, Duration, Environment): about the task, not the task.
_LABEL_LINE = re.compile(r"^[A-Z][\w ]{0,20}:\s*(?:\S+\s*){0,6}$")
# An issue template's section heading left at the end of a flattened title ("... Description").
# Capitalised, as templates write them: "Write a summary" keeps its last word.
_TRAILING_HEADING = re.compile(
    r"\s+(?:Description|Summary|Details|Problem|Steps to reproduce|Expected behaviou?r|Actual behaviou?r)\s*:?\s*$"
)
_FLAT_TEMPLATE_HEADING = re.compile(r"\s+(?:Description|Summary|Details)\s*:?\s+(?=[A-Z])")
_ISSUE_BODY = re.compile(r"^(?:Description|Summary|Details)\b")
_GREETING = re.compile(r"^(?:hi|hello|hey|dear|good (?:morning|afternoon|evening)|greetings)\b", re.IGNORECASE)

# Lead-ins after which the imperative follows ("We need to", "Your task is to", "Can you").
_ASKS = (
    r"(?:(?:your|the|our|my)\s+(?:main\s+|primary\s+|first\s+|overall\s+)?"
    r"(?:task|job|goal|objective|mission|assignment|aim|challenge)\s+(?:here\s+|today\s+|now\s+)?is(?:\s+to\b)?"
    r"|(?:you|we)\s+(?:will\s+|would\s+|also\s+)?(?:need|have|want|got)\s+to"
    r"|(?:you|we)(?:'ll|\s+will)\s+(?:need|have)\s+to"
    r"|(?:you|we)(?:\s+are|\s+were|'re)\s+(?:being\s+)?(?:asked|required|expected|supposed|going|requested)\s+to"
    r"|(?:you|we)(?:\s+are|\s+were|'re)\s+tasked\s+(?:to|with)"
    r"|(?:i|we)(?:\s+would|'d)\s+(?:like|love|want)(?:\s+you|\s+for\s+you)?\s+to"
    r"|(?:i|we)\s+(?:want|need|wish|intend|plan)(?:\s+you)?\s+to"
    r"|(?:i|we)(?:'m|\s+am|\s+are|'re)\s+(?:trying|looking|hoping|attempting)\s+to"
    r"|(?:can|could|would|will)\s+you(?:\s+please|\s+kindly)?(?:\s+help\s+(?:me|us)(?:\s+to)?)?"
    r"|(?:please|kindly|pls)(?:\s+help\s+(?:me|us)(?:\s+to)?)?"
    r"|help\s+(?:me|us)(?:\s+to)?"
    r"|let(?:'s|\s+us)"
    r"|(?:it\s+is|it's)\s+(?:your\s+)?(?:job|task)\s+to"
    r"|the\s+(?:task|goal|objective|job|aim)\s+(?:here\s+)?is\s+to"
    r"|i\s+need\s+(?:help|assistance)\s+(?:to|with)"
    r")\s*:?\s+"
)
# Lead-ins that tell a constraint as often as the task ("You must", "You should"): they count only
# before a verb that names work.
_WEAK_ASKS = r"(?:you|we)\s+(?:must|should|will|shall|can)\s+(?:also\s+)?"
# Where a lead-in may begin: the sentence's start, or after a clause that sets the scene
# ("Given a dependency file, you need to ...", "Suppose you are a poet and you need to ...").
_CLAUSE_START = r"(?:^|(?<=[,;:])\s*|\s(?:and|so|then|now)\s+|\s(?:but|yet)\s+)"
_ASK = re.compile(_CLAUSE_START + "(?P<lead>" + _ASKS + ")", re.IGNORECASE)
_WEAK_ASK = re.compile(_CLAUSE_START + "(?P<lead>" + _WEAK_ASKS + ")", re.IGNORECASE)
# A clause that makes what follows conditional or background, not the request.
_CONDITIONAL = re.compile(
    r"^\s*(?:if|when|whenever|unless|once|before|after|while|because|since|where|in case|even if|"
    r"for each|for every|each time|until)\b",
    re.IGNORECASE,
)
# Roles and scenes that open a task ("You are a poet.", "Act as a reviewer.", "Imagine you are ...").
_ROLE = re.compile(
    r"^(?:(?:suppose|imagine|assume|pretend)\s+(?:that\s+)?)?(?:you\s+are|you're|act\s+as|acting\s+as|as)\s+"
    r"(?:a|an|the|my|our|working|in|on|part)\b",
    re.IGNORECASE,
)
# Imperatives that set a constraint or a manner, not the work ("Make sure ...", "Do not ...").
_CONSTRAINT = re.compile(
    r"^(?:make\s+sure|ensure|note|remember|keep|do\s+not|don't|never|avoid|be\s+(?:sure|careful)|"
    r"feel\s+free|refer\s+to|see|assume|suppose|imagine|consider|follow|only|don't|stop|wait|try\s+not)\b",
    re.IGNORECASE,
)
# Verbs of getting ready ("First read the spec."): the ask only when nothing after them asks.
_PREPARATORY = frozenset("read look open go refer consult familiarize familiarise start begin explore inspect".split())
# Adverbs that may open an imperative ("Then sort ...", "Carefully review ...").
_OPENING_ADVERB = re.compile(
    r"^(?:(?:also|then|first|firstly|next|now|finally|just|simply|additionally|afterwards|lastly|please)\b,?\s+"
    r"|[a-z]+ly\s+(?=[a-z]))",
    re.IGNORECASE,
)

# Verbs that name work: an imperative opens with one (or with any word before a determiner).
_WORK_VERBS = frozenset(
    """add adapt adjust aggregate align allow analyse analyze annotate answer apply archive arrange assess
    audit automate backup benchmark bring build bump calculate categorise categorize change check choose
    classify clean cleanup clear clone collect combine compare compile complete compose compress compute
    configure connect convert cool copy correct count craft create crop debug decide decode decrypt
    define delete deploy describe design detect determine develop diagnose document download draft draw
    edit enable encode encrypt enhance estimate evaluate examine execute explain explore export extend
    extract figure fill filter find finish fit fix forecast format generate get give group harden heat
    help identify implement import improve index infer insert inspect install integrate investigate
    label list load locate look make map match measure merge migrate mine model modify monitor move
    normalise normalize open optimise optimize order organise organize outline output parse patch perform pick
    place plan plot polish port predict prepare preprocess print process produce profile program prove
    provide publish pull push put query rank read rebuild recommend reconcile record recover redesign
    reduce refactor reformat release remove rename render reorganise reorganize repair replace replicate
    report reproduce research reset resize resolve restore restructure retrieve return review revise
    rewrite run sanitise sanitize scan schedule scrape search secure select send separate set setup
    show simplify simulate solve sort split standardise standardize start store structure study style
    submit suggest summarise summarize support swap sync take tell test tidy tokenize trace track train
    transcribe transform translate troubleshoot tune turn type uncover undo unify update upgrade upload
    use validate verify visualise visualize write""".split()
)
_DETERMINERS = frozenset(
    "a an the this that these those all each every my our your their its some any both two three".split()
)
# Words that open a sentence of context, never an imperative ("The", "It", "There").
_NOT_VERBS = frozenset(
    """a an the this that these those it its there here they we you i he she my our your their his her
    in on at for from with by of as if when while because since after before during given based
    according using no not some any each every all both many most several such what which who how why
    where is are was were be been being has have had do does did can could should would will shall may
    might must also only just currently recently our""".split()
)
# A sentence whose verb comes within its first words, after a subject: a statement, not an imperative.
_STATEMENT = re.compile(
    r"^(?:(?!(?:that|which|who|what|why|how|when|where|whether|if|so|because)\b)[^\s]+\s+){1,5}"
    r"(?:is|are|was|were|does|doesn't|do|don't|did|didn't|has|have|isn't|aren't|can't|cannot|won't|"
    r"should|shouldn't)\b",
    re.IGNORECASE,
)
# Verbs whose object may be a whole clause ("Verify the output is correct").
_COMPLEMENT_VERBS = frozenset("verify check confirm ensure test prove show assert validate make see".split())
# Words common in English and rare in other languages written in Latin letters.
_ENGLISH_WORDS = frozenset(
    """the to of and on is are with for it this that you your from by be at my please an into some two
    we our they their should would could will can not does doesn't don't when which what how have has
    all each any after before about there here was were been using use a in i""".split()
)
# Function words of other languages written in Latin letters (Italian, Spanish, Portuguese, French,
# German, Dutch, Turkish), none of them an English word.
_OTHER_LANGUAGES_WORDS = frozenset(
    """il lo gli una uno di del della nel nella sul sulla con per che è um uma com do na no em os sobre
    el los las por para que les des du et est avec une sur dans der die das und mit ist ein eine den
    dem nicht auf het een van ve bir ile bu için ya da ne""".split()
)
# A few irregular "-ing" forms the rule below would get wrong.
_GERUND_BASES = {"running": "run", "setting": "set", "putting": "put", "getting": "get", "mapping": "map"}

# A statement of a problem rather than a request ("X crashes on Y", "Z doesn't save W").
_PROBLEM = re.compile(
    r"\b(?:bug|crash\w*|error\w*|fail\w*|broken|break\w*|doesn't|does not|don't|isn't|is not|aren't|can't|"
    r"cannot|won't|not working|incorrect\w*|wrong\w*|exception|raises?|regression|missing|vulnerab\w*|"
    r"leak\w*|hang\w*|slow\w*|unexpected\w*|invalid|should(?:n't)?|instead of|ignor\w*|allows?)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class _Unit:
    """A sentence of the task as read for its title: its plain text, and where it stood."""

    text: str
    heading: bool = False
    item: bool = False
    introduces_list: bool = False  # a line ending in ":" before a list
    title_line: bool = False  # a first line without a full stop, over the text it heads


@dataclass(frozen=True)
class _Ask:
    """What the task asks, as the title says it: `imperative` when it is a request for work in English."""

    text: str
    imperative: bool
    english: bool


def title_from_task(task: str) -> str:
    """A short title: the sentence that asks, in the imperative, at most TITLE_CHARS at a phrase boundary."""
    return _title(task, _ask(task))


def _title(task: str, ask: _Ask) -> str:
    if not ask.text:
        return clip_at_word(" ".join(task.split()), TITLE_CHARS) or "Task"
    text = ask.text if len(ask.text) <= TITLE_CHARS else _without_asides(ask.text)
    title = _clip_phrase(text, TITLE_CHARS) if ask.english else _first_clause(text, TITLE_CHARS)
    return _capitalised(title) or "Task"


def when_to_use_from_task(task: str) -> str:
    """When the procedure applies: the kind of task and what it involves, at most WHEN_TO_USE_CHARS."""
    ask = _ask(task)
    involved = mentioned(task)
    tail = f"; involves {', '.join(involved)}" if involved else ""
    room = max(60, WHEN_TO_USE_CHARS - len(tail) - 1)
    if not ask.text or not ask.english:
        lead, room = "When asked: ", min(room, TITLE_CHARS + 30) - 12
        situation = _first_clause(ask.text or " ".join(task.split()), room)
    elif ask.imperative:
        lead = "When asked to "
        situation = _clip_phrase(_general(_lowered(ask.text)), room - len(lead))
    else:
        lead = "When fixing a problem like: " if _PROBLEM.search(ask.text) else "When the task is: "
        situation = _clip_phrase(_general(ask.text), room - len(lead))
    title = _title(task, ask)
    if not involved and situation.casefold() == title.casefold():
        # Nothing to say beyond the title (a one-line task): the builder's default, which readers skip.
        return f"Tasks like: {title}"
    text = (lead + situation + tail)[: WHEN_TO_USE_CHARS - 1]
    return text.rstrip(" .,;:\u3002") + "."


# -- reading the task ------------------------------------------------------------------------------


def _units(task: str) -> list[_Unit]:
    """The task's headings, list items and sentences in order, without code, tags, paths or marks."""
    if "\n" not in task.strip():
        # Flattened onto one line, Markdown still marks where headings and list items began.
        task = _INLINE_MARK.sub(lambda m: "\n" + m.group().lstrip(), task)
    text = _FENCED.sub("\n\n", task)
    text = _TAG.sub("\n", text)
    units: list[_Unit] = []
    paragraph: list[str] = []
    item: list[str] = []

    def flush() -> None:
        if item:
            units.extend(_Unit(s, item=True) for s in _split(" ".join(item)))
            item.clear()
        if paragraph:
            lines = paragraph[:]
            first = lines[0].strip()
            second = lines[1].lstrip() if len(lines) > 1 else ""
            if second[:1].isupper() and len(first) <= 150 and not re.search(r"[.!?:,;]\s*$", first):
                # A heading line (an issue's title) ends where its line does; a line wrapped
                # mid-sentence goes on in lower case.
                units.extend(_Unit(s, title_line=not units) for s in [_plain(first)] if s)
                lines = lines[1:]
            sentences = _split("\n".join(lines))
            units.extend(_Unit(s) for s in sentences)
            if lines and lines[-1].rstrip().endswith(":") and units:
                units[-1] = _Unit(units[-1].text, introduces_list=True)
            paragraph.clear()

    for line in text.split("\n"):
        heading = _HEADING.match(line)
        if heading or _RULE.match(line) or not line.strip():
            flush()
            if heading and (said := _plain(heading.group(1))):
                units.append(_Unit(said, heading=True))
            continue
        if _LIST_ITEM.match(line):
            flush()
            item.append(_LIST_ITEM.sub("", line))
        elif item and line[:1].isspace():
            item.append(line)  # an item's continuation
        else:
            if item:
                flush()
            paragraph.append(line)
    flush()
    return units


def _split(paragraph: str) -> list[str]:
    out = []
    for part in _SENTENCE_END.split(paragraph.strip()):
        sentence = _plain(part)
        if sentence:
            out.append(sentence)
    return out


def _path_said(match: re.Match[str]) -> str:
    """A path goes with the words that introduce it ("stored at /root/data"); a path that is the
    subject of its sentence is named by its file's name."""
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
    sentence = re.sub(r"\s\(\s*\)|\s+([,.;:!?)])", r"\1", sentence)
    return sentence.strip(" ,;:-")


def _is_english(text: str) -> bool:
    """Whether `text` reads as English: Latin letters, and more English function words than those of
    other languages written in Latin letters (two at least where it has letters English does not use)."""
    letters = [c for c in text if c.isalpha()]
    if not letters or sum(c.isascii() for c in letters) < 0.85 * len(letters):
        return False
    plain = all(c.isascii() for c in letters)
    tokens = re.findall(r"[^\W\d_]+(?:'[a-z]+)?", text.lower())
    english = sum(t in _ENGLISH_WORDS for t in tokens)
    other = sum(t in _OTHER_LANGUAGES_WORDS for t in tokens)
    if plain and other == 0 and tokens and tokens[0] in _WORK_VERBS:
        return True
    return english > other and english >= (1 if plain else 2)


def _ask(task: str) -> _Ask:
    named = _NAMED_TASK.search(_FENCED.sub("", task))
    if named and (said := _plain(_named_line(named.group(1), flattened="\n" not in task.strip()))):
        request = _request(said, strong_only=False)
        return _Ask(request or said, bool(request), _is_english(said))
    units = _opening(_units(task))
    if not units:
        return _Ask("", False, False)
    first = _issue_title(units[0].text)
    if not _is_english(" ".join(u.text for u in units[:4])):
        return _Ask(first, False, False)
    if units[0].title_line or first != units[0].text or (len(units) > 1 and _ISSUE_BODY.match(units[1].text)):
        # An issue: its title line says the task, whatever its body goes on to ask.
        request = _request(first, strong_only=False)
        return _Ask(request or first, bool(request), True)
    listed = False  # whether the list being read was introduced by a lead-in ("You need to:")
    context: str | None = None
    getting_ready: str | None = None
    for unit in units[:_OPENING_UNITS]:
        if unit.heading:
            continue
        if not unit.item:
            listed = False
        request = _request(unit.text, strong_only=unit.item and not listed)
        if request and request.split(" ", 1)[0].lower() in _PREPARATORY:
            getting_ready = getting_ready or request
        elif request:
            if context and _refers_back(request):
                request = f"{request}: {_first_clause(context, TITLE_CHARS)}"
            return _Ask(request, True, True)
        if unit.introduces_list:
            lead = unit.text.rstrip(" :") + " "
            listed = any(match.end() == len(lead) for match in _ASK.finditer(lead))
        if context is None and not unit.item and not _ROLE.match(unit.text):
            context = _issue_title(unit.text)
    if getting_ready:
        return _Ask(getting_ready, True, True)
    return _Ask(context or first, False, True)


def _named_line(text: str, *, flattened: bool) -> str:
    """A line naming the task, without the text after it when the task came flattened onto one line
    ("Task: Fix the timeout Users are signed out ..." -> "Fix the timeout")."""
    if flattened:
        # A new sentence: a capitalised word after a lower-case one, then lower-case words.
        following = re.search(r"(?<=[a-z0-9)])\s+(?=[A-Z][a-z]+(?:\s+[a-z]+){3})", text)
        if following:
            return text[: following.start()]
    return text


def _opening(units: list[_Unit]) -> list[_Unit]:
    """The units from the task's first statement: form lines and short headings before it dropped."""
    while len(units) > 1 and (
        _LABEL_LINE.match(units[0].text)
        or len(units[0].text.split()) <= 2
        or units[0].heading
        or _GREETING.match(units[0].text)
    ):
        units = units[1:]
    cleaned = []
    for unit in units:
        text = _LABEL.sub("", _WRAPPERS.sub("", unit.text).strip())
        if text:
            cleaned.append(_Unit(text, unit.heading, unit.item, unit.introduces_list, unit.title_line))
    return cleaned


def _issue_title(sentence: str) -> str:
    """A sentence without an issue template's heading flattened into it ("Title Description Text")."""
    sentence = _TRAILING_HEADING.sub("", sentence)
    return _FLAT_TEMPLATE_HEADING.split(sentence, maxsplit=1)[0]


def _request(sentence: str, *, strong_only: bool) -> str | None:
    """The work `sentence` asks for, as an imperative ("We need to sort X" -> "sort X"), or None."""
    sentence = sentence.rstrip(" ?!.")
    for pattern, strong in ((_ASK, True), (_WEAK_ASK, False)):
        for match in pattern.finditer(sentence):
            before = sentence[: match.start()]
            if len(before) > 160 or _CONDITIONAL.match(before) or _CONDITIONAL.search(before.split(",")[-1]):
                continue
            rest = _imperative(_head_clause(sentence[match.end() :]))
            if rest is None:
                continue
            verb = rest.split(" ", 1)[0].lower()
            if (strong or verb in _WORK_VERBS) and not _CONSTRAINT.match(rest) and len(rest.split()) >= 2:
                return rest
    if strong_only:
        return None
    text = _OPENING_ADVERB.sub("", sentence, count=1)
    # "For this task, write ..." / "In the notebook, fill in ...": a scene-setting clause, then the imperative.
    scene = re.match(r"^(?:in|for|with|on|using|from|given)\b[^,]{0,80},\s*", text, re.IGNORECASE)
    if scene:
        text = text[scene.end() :]
    if _CONSTRAINT.match(text) or not _looks_imperative(text):
        return None
    return _head_clause(text)


def _head_clause(text: str) -> str:
    """An ask up to a semicolon or colon that ends its first clause ("Reduce X; it is now 2 GB")."""
    for mark in (";", ": "):
        head = text.split(mark, 1)[0]
        if head != text and len(head.split()) >= 3:
            return head
    return text


def _imperative(rest: str) -> str | None:
    """What follows a lead-in, as an imperative: a gerund made a verb, "be"/"have been" refused."""
    rest = _OPENING_ADVERB.sub("", rest.strip(" :"), count=1).strip()
    first = rest.split(" ", 1)[0].lower()
    if not first or first in {"be", "been", "being", "have", "has", "had"}:
        return None
    if first.endswith("ing") and len(first) > 5:
        base = _verb_of_gerund(first)
        if base is None:
            return None
        rest = base + rest[len(first) :]
    elif first in _NOT_VERBS:
        return None  # a noun phrase ("tasked with a project"): not an ask
    return rest


def _verb_of_gerund(gerund: str) -> str | None:
    if gerund in _GERUND_BASES:
        return _GERUND_BASES[gerund]
    stem = gerund[:-3]
    for base in (stem, stem + "e", stem[:-1] if len(stem) > 2 and stem[-1] == stem[-2] else ""):
        if base in _WORK_VERBS:
            return base
    return None


def _looks_imperative(text: str) -> bool:
    """Whether `text` opens with a verb in the imperative: a verb of work, or any plain word before a
    determiner ("Tokenize the input")."""
    tokens = text.split()
    if len(tokens) < 2:
        return False
    first, second = tokens[0], tokens[1].lower().strip(",")
    word = first.lower()
    if not first[:1].isalpha() or not first.replace("-", "").isalpha() or word in _NOT_VERBS:
        return False
    if first[1:] != first[1:].lower():
        return False  # an acronym or a name in CamelCase, not a verb
    if _STATEMENT.match(text) and word not in _COMPLEMENT_VERBS:
        return False  # "Change uuid field to FK does not create dependency": a subject, then its verb
    if word in _WORK_VERBS:
        return True
    return second in _DETERMINERS and not re.search(r"(?:ed|ing|ly|s)$", word)


def _refers_back(request: str) -> bool:
    """A short ask that only points at what came before ("Fix this issue", "Solve it")."""
    words = request.split()
    return len(words) <= 4 and bool(
        re.search(r"\b(?:this|that|these|those|it|them|the above|the following)\b", request, re.IGNORECASE)
    )


# -- clipping and generalising ----------------------------------------------------------------------

# Where a phrase ends: before a preposition, a conjunction or a relative word, or at a clause mark.
_PHRASE_BOUNDARY = re.compile(
    r"\s*[,;:]\s|\s+[-\u2013\u2014]\s+|\s+\(|\s+(?=(?:to|in|into|on|onto|for|from|with|without|by|at|using|via|and|or|"
    r"but|so|that|which|who|whose|where|when|while|because|as|after|before|under|over|through|according|"
    r"including|such|based|across|per|within|than|then|if|unless|until|whether|like|is|are|was|were|"
    r"should|shouldn't|must|can|cannot|can't|could|will|won't|would|does|doesn't|do|don't|did|didn't|"
    r"has|have|had|may|might)\b)",
    re.IGNORECASE,
)
_AUXILIARIES = frozenset(
    "is are was were should shouldn't must can cannot can't could will won't would does doesn't do don't did "
    "didn't has have had may might".split()
)
_SUBORDINATORS = frozenset(
    "that which who whose where when while because if unless until whether as than what how why".split()
)
_DANGLING = re.compile(
    r"(?:\s+(?:and|or|but|nor|yet|so|of|to|the|a|an|in|on|for|with|by|at|from|that|which|who|its|their|your|my|"
    r"our|this|is|are|when|if|while|because|than|as|like|including|such|unless|whether|where|then|what|how|"
    r"why))+$",
    re.IGNORECASE,
)


def clip_at_word(text: str, limit: int) -> str:
    """`text` cut at the last whole word within `limit` characters (and before a trailing clause mark)."""
    if len(text) <= limit:
        return text.rstrip(" .,;:")
    cut = text[: limit + 1]
    space = cut.rfind(" ")
    cut = cut[:space] if space > limit // 2 else text[:limit]
    return _DANGLING.sub("", cut).rstrip(" .,;:(-")


def _clip_phrase(text: str, limit: int) -> str:
    """`text` within `limit` characters, cut where a phrase ends rather than inside one."""
    text = text.strip().rstrip(" .;:,")
    if len(text) <= limit:
        return _balanced(text)
    ends = []
    subordinate = False  # inside "when the first line is ...", an auxiliary ends no phrase
    for match in _PHRASE_BOUNDARY.finditer(text):
        if match.start() > limit:
            break
        word = text[match.end() :].split(" ", 1)[0].lower()
        if not (subordinate and word in _AUXILIARIES):
            ends.append(match.start())
        subordinate = subordinate or word in _SUBORDINATORS
    long_ends = [end for end in ends if len(text[:end].split()) >= 3 and end >= min(25, limit // 2)]
    short_ends = [end for end in ends if len(text[:end].split()) >= 2 and end >= min(15, limit // 3)]
    best = long_ends or short_ends
    cut = text[: max(best)] if best else clip_at_word(text, limit)
    return _balanced(_DANGLING.sub("", cut).rstrip(" .,;:(-\u2013\u2014"))


def _balanced(text: str) -> str:
    """`text` without a bracket or quote it opens and does not close."""
    for opening, closing in (("(", ")"), ("[", "]"), ("\u201c", "\u201d")):
        if text.count(opening) > text.count(closing):
            text = text[: text.rfind(opening)].rstrip(" ,;:")
    if text.count('"') % 2:
        text = text[: text.rfind('"')].rstrip(" ,;:")
    return text


def _first_clause(sentence: str, limit: int) -> str:
    """The sentence up to its first colon or semicolon when that part says enough on its own."""
    for mark in (":", ";", " - ", " \u2014 ", "\u3002", "\uff1b", "\uff1a"):
        head = sentence.split(mark, 1)[0]
        if head != sentence and len(head.split()) >= 4:
            sentence = head
            break
    return clip_at_word(sentence, limit)


def _without_asides(text: str) -> str:
    """`text` without its parenthetical asides ("D3.js (v6)", "analysis (SCA)")."""
    return re.sub(_ASIDE, "", text)


# An aside in brackets after a word ("D3.js (v6)"), not a call's brackets ("Q(...)", "(deep)copy").
_ASIDE = r"\s+\([^()]{0,80}\)(?=[\s,.;:!?]|$)"
_SPECIFICS = (
    (re.compile(_ASIDE), ""),
    (re.compile(r"\b(?:version|release|v)\s*\d[\w.-]*", re.IGNORECASE), ""),  # versions
    (
        re.compile(
            r"(?:\b(?:(?:more|fewer|less)\s+than|over|under|at\s+least|at\s+most|up\s+to|about|around|exactly|"
            r"nearly|almost|roughly)\s+|^|(?<=\s))\d[\d,.]*\+?\s+"
            r"(?!(?:ms|s|sec|seconds?|minutes?|mins?|hours?|h|days?|weeks?|months?|years?|[kmgt]i?b|bytes?|"
            r"percent|%)\b)(?=[a-z])",
            re.IGNORECASE,
        ),
        " ",
    ),  # counts ("more than 100 papers" -> "papers")
    (re.compile(r"\b(?:this|these|my|your|our|their)\s+(?=[a-z])", re.IGNORECASE), "the "),
    (re.compile(r"[\"\u201c\u201d]"), ""),
)


def _general(text: str) -> str:
    """The ask without what only this task has: asides, versions, counts; "this code" -> "the code"."""
    for pattern, replacement in _SPECIFICS:
        text = pattern.sub(replacement, text)
    text = re.sub(r"\bthe\s+the\b", "the", text)
    text = re.sub(r"\s+([,.;:!?)])", r"\1", " ".join(text.split()))
    return text.strip(" ,;:")


def _lowered(text: str) -> str:
    """The first word lower case when it is an ordinary capitalised word (not a name or code)."""
    first = text.split(" ", 1)[0]
    if first[:1].isupper() and first[1:].islower() and first.isalpha():
        return text[:1].lower() + text[1:]
    return text


def _capitalised(text: str) -> str:
    """The first letter upper case, unless the first word is code ("model_to_dict()")."""
    first = text.split(" ", 1)[0]
    return text[:1].upper() + text[1:] if first.isalpha() and first.islower() else text
