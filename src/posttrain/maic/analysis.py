"""What a teaching document is about: the structured analysis a courseware page is built from.

An `Analysis` holds the fields the page generator plans with — main topics, key concepts,
learning objectives, prerequisite knowledge, difficulty, target grade level, subject area,
procedural concepts with their key steps — plus the definitions the document gives, and
`analyser`, which says who produced it. Two producers:

- `analyse_with_model(document, chat)`: any `ChatModel`, asked once for exactly these JSON
  fields. The reply is read with `posttrain.models.chat.replies` (JSON in code fences or prose,
  single quotes, trailing commas) and validated with `Analysis.from_dict`; an unreadable or
  invalid reply is re-asked (at a sampling temperature, as every judge here does). The prompt
  carries the document's text up to `MAX_PROMPT_CHARS` (its first 12,000 characters, marked as
  cut); after the attempts, `AnalysisFailed` names the model and the last reply's start.
- `analyse_rules(document)`: offline and deterministic, labelled `analyser="rule-based"`:

  * main topics: the section headings (meta headings such as "Learning objectives" or
    "Summary" left out), else the top key concepts;
  * definitions: sentences "X is a/an/the ...", "X is defined as / refers to / means / states
    that ...", lines "X: ..." (X capitalised, not a label like "Note" or "Step 2") and
    "**X** — ..."; X is at most four words and starts with no pronoun or stop word. Each
    defined term is a key concept, in lower case unless written as a name or acronym;
  * more key concepts by term frequency: words and two-word phrases (no stop words, no
    -ly adverbs, plurals folded onto singulars seen in the text) that occur at least twice,
    phrases weighted double; a word is dropped when a chosen phrase explains its count, and
    so is a word seen more often before a determiner ("Measure the") than after one — a
    verb, without a part-of-speech tagger. The stop list is built in (nltk's stopwords
    corpus and tagger need downloads, so they are not used);
  * procedural concepts: numbered lists ("1. ...", "2) ...", "Step 1: ...") counting up from
    1, bullet lists under a heading naming a procedure ("Steps", "Procedure", "How to ..."),
    and "First, ... Then/Next ... Finally ..." sentence runs; each is named by its section's
    heading (or the line introducing it);
  * learning objectives: sentences with "learn", "understand", "be able to", "objective",
    and items under an "Objectives" heading; else "Explain <concept>" for the top concepts;
  * prerequisites: sentences with "before", "prerequisite", "you should know", "recall",
    "familiar with", "assumes", and items under a "Prerequisites" heading;
  * difficulty: the Flesch-Kincaid grade of the prose (0.39 x words per sentence + 11.8 x
    syllables per word - 15.59, syllables counted as vowel groups): below 8 is "beginner",
    below 12 "intermediate", else "advanced" — sentence length and word length are the two
    things that make a text harder to read;
  * target grade level: an explicit mention ("grade 8", "grades 9-10", "undergraduate",
    "high school", ...), else from the difficulty;
  * subject area: keyword lists per subject (physics, chemistry, biology, mathematics,
    computer science, history, geography, economics, literature); the subject whose
    keywords occur most, at least `MIN_SUBJECT_HITS` times, else "general".
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from posttrain.errors import InputError
from posttrain.maic.documents import Document, Section
from posttrain.models.chat.base import ChatModel, GenerationParams
from posttrain.models.chat.replies import ask_parsed, json_candidates

DIFFICULTIES = ("beginner", "intermediate", "advanced")
RULE_BASED = "rule-based"
MAX_PROMPT_CHARS = 12_000
"""Document text sent to a model analyser: its first 12,000 characters (about 3,000 tokens)."""
MAX_KEY_CONCEPTS = 12
MAX_OBJECTIVES = 8
MAX_PREREQUISITES = 6
MIN_SUBJECT_HITS = 2

_LIST_FIELDS = ("main_topics", "key_concepts", "learning_objectives", "prerequisite_knowledge")
_TEXT_FIELDS = ("difficulty_level", "target_grade_level", "subject_area")


@dataclass
class Procedure:
    name: str
    key_steps: list[str]


@dataclass
class Analysis:
    main_topics: list[str]
    key_concepts: list[str]
    learning_objectives: list[str]
    prerequisite_knowledge: list[str]
    difficulty_level: str
    """"beginner" | "intermediate" | "advanced"."""
    target_grade_level: str
    """Free text, e.g. "grades 9-10", "undergraduate"."""
    subject_area: str
    """e.g. "physics", "biology", "mathematics", "computer science", "general"."""
    procedural_concepts: list[Procedure]
    definitions: dict[str, str] = field(default_factory=dict)
    """Key concept -> the sentence of the document defining it, where it gives one."""
    analyser: str = RULE_BASED
    """"rule-based" or the chat model's name."""

    def to_dict(self) -> dict:
        return {
            "main_topics": list(self.main_topics),
            "key_concepts": list(self.key_concepts),
            "learning_objectives": list(self.learning_objectives),
            "prerequisite_knowledge": list(self.prerequisite_knowledge),
            "difficulty_level": self.difficulty_level,
            "target_grade_level": self.target_grade_level,
            "subject_area": self.subject_area,
            "procedural_concepts": [
                {"name": p.name, "key_steps": list(p.key_steps)} for p in self.procedural_concepts
            ],
            "definitions": dict(self.definitions),
            "analyser": self.analyser,
        }

    @classmethod
    def from_dict(
        cls, data: Any, *, where: str = "analysis", analyser: str | None = None
    ) -> Analysis:
        """Validate and build; `InputError` naming `where` and the offending key. `analyser`
        (when given) labels the result whatever `data` says; else `data["analyser"]` must."""
        if not isinstance(data, Mapping):
            raise InputError(f"expected a JSON object, got {_type(data)}", where)
        for key in (*_LIST_FIELDS, *_TEXT_FIELDS, "procedural_concepts"):
            if key not in data:
                raise InputError("missing", where, key=key)
        lists = {key: _strings(data[key], where, key) for key in _LIST_FIELDS}
        texts = {key: _text(data[key], where, key) for key in _TEXT_FIELDS}
        difficulty = texts["difficulty_level"].lower()
        if difficulty not in DIFFICULTIES:
            raise InputError(
                f"must be one of {', '.join(DIFFICULTIES)}, got {texts['difficulty_level']!r}",
                where,
                key="difficulty_level",
            )
        procedures = data["procedural_concepts"]
        if not isinstance(procedures, list):
            raise InputError(
                f"expected a list of {{name, key_steps}}, got {_type(procedures)}",
                where,
                key="procedural_concepts",
            )
        built = []
        for i, item in enumerate(procedures):
            key = f"procedural_concepts[{i}]"
            if not isinstance(item, Mapping):
                raise InputError(f"expected {{name, key_steps}}, got {_type(item)}", where, key=key)
            if "name" not in item or "key_steps" not in item:
                missing = "name" if "name" not in item else "key_steps"
                raise InputError("missing", where, key=f"{key}.{missing}")
            built.append(
                Procedure(
                    name=_text(item["name"], where, f"{key}.name"),
                    key_steps=_strings(item["key_steps"], where, f"{key}.key_steps"),
                )
            )
        definitions = data.get("definitions", {})
        if not isinstance(definitions, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in definitions.items()
        ):
            raise InputError(
                "expected an object of concept -> definition strings", where, key="definitions"
            )
        label = analyser if analyser is not None else data.get("analyser")
        if not isinstance(label, str) or not label.strip():
            raise InputError("missing (who produced the analysis)", where, key="analyser")
        return cls(
            **lists,
            difficulty_level=difficulty,
            target_grade_level=texts["target_grade_level"],
            subject_area=texts["subject_area"].lower(),
            procedural_concepts=built,
            definitions={k.strip(): v.strip() for k, v in definitions.items() if k.strip()},
            analyser=label.strip(),
        )


def _type(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string"}.get(
        type(value), type(value).__name__
    )


def _strings(value: Any, where: str, key: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InputError(f"expected a list of strings, got {_type(value)}", where, key=key)
    return [v.strip() for v in value if v.strip()]


def _text(value: Any, where: str, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"expected a non-empty string, got {_type(value)}", where, key=key)
    return value.strip()


# =========================================================================== model analyser


class AnalysisFailed(RuntimeError):
    """A chat model gave no valid analysis within its attempts."""


PROMPT = """\
You are analysing a teaching document to plan an interactive courseware page.
Answer with ONE JSON object and nothing else, with exactly these fields:
{{
  "main_topics": [string, ...],             // the document's main topics
  "key_concepts": [string, ...],            // the key concepts (terms) it teaches
  "learning_objectives": [string, ...],     // what a learner should be able to do afterwards
  "prerequisite_knowledge": [string, ...],  // what a learner must know beforehand
  "difficulty_level": "beginner" | "intermediate" | "advanced",
  "target_grade_level": string,             // e.g. "grades 9-10", "undergraduate"
  "subject_area": string,                   // e.g. "physics", "biology", "mathematics"
  "procedural_concepts": [{{"name": string, "key_steps": [string, ...]}}, ...],
  "definitions": {{concept: one-sentence definition}}  // only those the document gives
}}

Document title: {title}
Document kind: {kind}
Document text:
<<<
{text}
>>>
"""


def analysis_prompt(document: Document) -> str:
    """The prompt `analyse_with_model` sends: the fields, then the text up to the bound."""
    text = document.text
    if len(text) > MAX_PROMPT_CHARS:
        text = f"{text[:MAX_PROMPT_CHARS]}\n[... cut: {len(text) - MAX_PROMPT_CHARS} more chars]"
    return PROMPT.format(title=document.title, kind=document.kind, text=text)


def analyse_with_model(document: Document, chat: ChatModel, *, attempts: int = 3) -> Analysis:
    """The model's analysis of `document`; unreadable or invalid replies are re-asked, up to
    `attempts` asks in all, then `AnalysisFailed` names the model, the last problem and the
    start of the last reply."""
    if attempts < 1:
        raise ValueError(f"attempts must be >= 1, got {attempts}")
    name = getattr(chat, "name", type(chat).__name__)
    problems: list[str] = []

    def parse(reply: str) -> Analysis | None:
        candidates = [c for c in json_candidates(reply) if isinstance(c, dict)]
        if not candidates:
            problems.append("no JSON object in the reply")
            return None
        invalid: list[str] = []
        for candidate in candidates:  # fenced blocks first, then outermost objects
            try:
                return Analysis.from_dict(candidate, where=f"reply of {name}", analyser=name)
            except InputError as exc:
                invalid.append(str(exc))
        problems.append(invalid[0])
        return None

    params = GenerationParams(max_tokens=2048, temperature=0.0)
    answer = ask_parsed(chat, [analysis_prompt(document)], params, attempts - 1, parse)[0]
    if answer.value is not None:
        return answer.value
    start = " ".join(answer.text.split())[:200]
    raise AnalysisFailed(
        f"chat model {name!r} gave no valid analysis of {document.path} in {answer.attempts} "
        f"attempt(s); last problem: {problems[-1] if problems else 'none'}; "
        f"last reply starts: {start!r}"
    )


# =========================================================================== rule-based analyser


def _wordset(words: str) -> frozenset[str]:
    return frozenset(words.split())


_STOP = _wordset(
    """a about above after again against all almost also although always am among an and any
    are aren't around as at be because been before being below between both but by can cannot
    could did do does doing done down during each either else enough even ever every few for
    from further get gets getting give given gives go goes going got had has have having he her
    here hers herself him himself his how however i if in into is isn't it it's its itself
    just keep least less let like likely made make makes making many may me might more most
    much must my myself need needs neither never new next no nor not now of off often on once
    one only or other others otherwise our ours out over own per perhaps put quite rather
    really said same see seen several shall she should show shown shows since so some such
    take takes than that the their theirs them themselves then there these they thing things
    this those though through thus to together too toward towards two under until up upon us
    use used uses using usually very via was wasn't way ways we well were what when where
    whether which while who whom whose why will with within without would yet you your yours
    yourself yourselves also first second third fourth fifth last finally next lesson lessons
    student students learner learners learn learning understand objective objectives section
    chapter page slide figure table example examples step steps note notes summary exercise
    exercises question questions answer answers able recall prerequisite prerequisites know
    called call write read find found three four five six seven eight nine ten different
    important new good lot kind kinds part parts called etc e.g i.e larger smaller greater
    bigger higher lower faster slower"""
)
_PRONOUN_SUBJECTS = _wordset(
    "it this that these those there here he she they we you i one each which what who our "
    "your their his her its such another other some any all both"
)
_META_HEADINGS = re.compile(
    r"^(learning )?(objectives?|goals?|outcomes?|aims?)$|^prerequisites?|^(summary|introduction|"
    r"overview|conclusion|references|further reading|exercises?|questions?|review|key terms|"
    r"glossary|vocabulary|homework|notes?)$",
    re.IGNORECASE,
)
_OBJECTIVE_HEADING = re.compile(r"\b(objectives?|goals?|outcomes?|aims?)\b", re.IGNORECASE)
_PREREQ_HEADING = re.compile(r"\b(prerequisites?|before you (start|begin)|background)\b", re.I)
_PROCEDURE_HEADING = re.compile(r"\b(steps?|procedure|method|how to|instructions|recipe)\b", re.I)
_OBJECTIVE_WORDS = re.compile(
    r"\b(learn|learns|understand|be able to|objectives?|you will)\b", re.IGNORECASE
)
_PREREQ_WORDS = re.compile(
    r"\b(before (this|you|starting|we)|prerequisites?|you should (already )?know|recall|"
    r"familiar(ity)? with|assumes?|should already)\b",
    re.IGNORECASE,
)
_SUBJECT_KEYWORD_TEXT = {
    "physics": (
        "force, forces, velocity, acceleration, momentum, energy, kinetic, potential energy, "
        "gravity, gravitational, friction, newton, newtons, mass, motion, joule, joules, watt, "
        "voltage, electric, magnetic, circuit, resistance, wave, waves, frequency, wavelength, "
        "quantum, photon, relativity, speed, displacement, inertia, torque, pressure"
    ),
    "chemistry": (
        "atom, atoms, molecule, molecules, chemical, reaction, reactions, acid, acids, compound, "
        "compounds, ion, ions, covalent, ionic, mole, moles, catalyst, oxidation, periodic table, "
        "solution, solvent, ph, bond, bonds"
    ),
    "biology": (
        "cell, cells, organism, organisms, dna, gene, genes, protein, proteins, enzyme, enzymes, "
        "evolution, species, photosynthesis, ecosystem, tissue, organ, organs, mitochondria, "
        "membrane, chromosome, bacteria, plant, plants, animal, animals, respiration"
    ),
    "mathematics": (
        "equation, equations, theorem, proof, integral, derivative, algebra, geometry, matrix, "
        "matrices, polynomial, fraction, fractions, triangle, angle, angles, probability, "
        "calculus, function, functions, prime, number, numbers, variable, sum, product, ratio, "
        "graph"
    ),
    "computer science": (
        "algorithm, algorithms, program, programs, programming, code, array, arrays, loop, loops, "
        "recursion, recursive, compiler, software, database, python, binary, complexity, sorting, "
        "data structure, computer, bit, bits, memory, stack, queue, tree, hash"
    ),
    "history": (
        "war, empire, century, revolution, king, queen, dynasty, treaty, colonial, ancient, "
        "civilization, civilisation, medieval, monarchy, historian, battle"
    ),
    "geography": (
        "climate, continent, continents, river, rivers, mountain, population, map, latitude, "
        "longitude, erosion, region, country, countries"
    ),
    "economics": (
        "market, markets, price, prices, supply, demand, inflation, gdp, economy, trade, tax, "
        "taxes, interest rate, profit, cost"
    ),
    "literature": (
        "poem, poetry, novel, author, character, characters, narrative, metaphor, theme, themes, "
        "stanza, plot, narrator"
    ),
}
SUBJECT_KEYWORDS: dict[str, tuple[str, ...]] = {
    subject: tuple(k.strip() for k in text.split(","))
    for subject, text in _SUBJECT_KEYWORD_TEXT.items()
}
"""Subject -> keywords (whole words or phrases, lower case) that vote for it."""
_GRADE_MENTION = re.compile(
    r"\b(grades? \d{1,2}(?:\s*(?:-|–|to)\s*\d{1,2})?|\d{1,2}(?:st|nd|rd|th) grade|"
    r"years? \d{1,2}(?:\s*(?:-|–|to)\s*\d{1,2})?|k-12|undergraduate|postgraduate|graduate|"
    r"high school|secondary school|middle school|primary school|elementary school|university|"
    r"college)\b",
    re.IGNORECASE,
)
_GRADE_BY_DIFFICULTY = {
    "beginner": "middle school (grades 6-8)",
    "intermediate": "high school (grades 9-12)",
    "advanced": "undergraduate",
}


def analyse_rules(document: Document) -> Analysis:
    """The offline, deterministic analysis of `document` (see the module docstring for the
    rules), labelled `analyser="rule-based"`."""
    sections = [_Prepared.of(s) for s in document.sections]
    sentences = [s for p in sections for s in p.sentences]
    definitions = _definitions(sections, "\n".join(sentences))
    key_concepts = _key_concepts(sections, definitions)
    procedures = _procedures(sections)
    objectives = _listed_or_said(sections, _OBJECTIVE_HEADING, _OBJECTIVE_WORDS, MAX_OBJECTIVES)
    if not objectives:
        objectives = [f"Explain {concept}" for concept in key_concepts[:3]]
    prerequisites = _listed_or_said(sections, _PREREQ_HEADING, _PREREQ_WORDS, MAX_PREREQUISITES)
    topics = _dedupe(
        p.title for p in sections if p.title and not _META_HEADINGS.match(p.title.strip())
    )
    if not topics:
        topics = key_concepts[:3] or [document.title]
    difficulty = _difficulty(sentences)
    grade = _GRADE_MENTION.search(document.text)
    return Analysis(
        main_topics=topics,
        key_concepts=key_concepts,
        learning_objectives=objectives,
        prerequisite_knowledge=prerequisites,
        difficulty_level=difficulty,
        target_grade_level=(
            " ".join(grade.group(1).lower().split()) if grade else _GRADE_BY_DIFFICULTY[difficulty]
        ),
        subject_area=_subject(document.text),
        procedural_concepts=procedures,
        definitions=definitions,
        analyser=RULE_BASED,
    )


@dataclass
class _Prepared:
    """A section's title, its raw lines (markdown kept) and its cleaned prose sentences,
    with the index of the line each sentence's paragraph starts on."""

    title: str | None
    lines: list[str]
    sentences: list[str]
    sentence_lines: list[int]

    @classmethod
    def of(cls, section: Section) -> _Prepared:
        title = _clean(section.title) if section.title else None
        raw = "\n".join(p for p in (section.text, section.notes) if p)
        lines = raw.split("\n")
        located = _sentences(lines)
        return cls(
            title=title or None,
            lines=lines,
            sentences=[sentence for _, sentence in located],
            sentence_lines=[line for line, _ in located],
        )


_MARKUP = [
    (re.compile(r"!\[[^\]]*\]\([^)]*\)"), ""),  # images
    (re.compile(r"\[([^\]]+)\]\([^)]*\)"), r"\1"),  # links -> their text
    (re.compile(r"(\*\*|__|`)"), ""),
    (re.compile(r"(?<!\w)[*_](\S[^*_]*?)[*_](?!\w)"), r"\1"),  # *emphasis*
    (re.compile(r"^\s{0,3}(#{1,6}\s+|>\s?)"), ""),
]
_BOLD_DEF = re.compile(
    r"^\s*(?:[-*+]\s+)?(?:(?:a|an|the)\s+)?\*\*([^*]{2,60})\*\*\s*(?:[—–:-]|is\b|are\b)\s*(.+)$",
    re.IGNORECASE,
)
_LIST_ITEM = re.compile(r"^\s*(?:[-*+•]|\d{1,2}[.)]|step\s+\d{1,2}\s*[:.)-]?)\s+", re.IGNORECASE)


def _clean(text: str) -> str:
    for pattern, replacement in _MARKUP:
        text = pattern.sub(replacement, text)
    return " ".join(text.split())


def _sentences(lines: list[str]) -> list[tuple[int, str]]:
    """(line index, sentence) for the prose: list items and bold-term lines stand alone; other
    lines are joined into paragraphs and split after . ! ? followed by a capital, digit or
    quote. The index is that of the paragraph's first line."""
    found: list[tuple[int, str]] = []
    paragraph: list[str] = []
    start = 0

    def flush() -> None:
        text = _clean(" ".join(paragraph))
        paragraph.clear()
        for piece in re.split(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])", text):
            if piece.strip():
                found.append((start, piece.strip()))

    for index, line in enumerate(lines):
        if not line.strip() or line.lstrip().startswith("```"):
            flush()
        elif _LIST_ITEM.match(line) or _BOLD_DEF.match(line):
            flush()
            start = index
            paragraph.append(_LIST_ITEM.sub("", line))
            flush()
        else:
            if not paragraph:
                start = index
            paragraph.append(line)
    flush()
    return found


# --------------------------------------------------------------------------- definitions

_COLON_DEF = re.compile(r"^\s*(?:[-*+]\s+)?([A-Z][\w'’ -]{1,50}?)\s*:\s+(\S.{8,})$")
_IS_DEF = re.compile(
    r"^(?:(?:the|a|an)\s+)?([A-Za-z][\w'’-]*(?:\s+[\w'’-]+){0,3}?)\s+"
    r"(?:is|are)\s+(?:(?:a|an|the)\s|defined\s+as\b|called\b)"
    r"|^(?:(?:the|a|an)\s+)?([A-Za-z][\w'’-]*(?:\s+[\w'’-]+){0,3}?)\s+"
    r"(?:refers?\s+to|means|states\s+that|is\s+defined\s+as)\b",
    re.IGNORECASE,
)
_COLON_LABELS = re.compile(
    r"^(step\s*\d*|note|notes|example|examples|tip|hint|warning|answer|question|exercise|"
    r"objectives?|prerequisites?|summary|goal|goals|figure\s*\d*|table\s*\d*|remember|"
    r"important|caution|solution|source|date|time|author|title|key terms?)$",
    re.IGNORECASE,
)


def _definitions(sections: list[_Prepared], all_text: str) -> dict[str, str]:
    """Defined term -> the defining sentence, in order of appearance (the first definition
    of a term wins)."""
    candidates: list[tuple[int, int, str, str]] = []  # (section, line, term, sentence)
    for number, prepared in enumerate(sections):
        for index, line in enumerate(prepared.lines):
            bold = _BOLD_DEF.match(line)
            colon = None if bold else _COLON_DEF.match(line)
            if bold:
                candidates.append((number, index, bold.group(1), _clean(line.lstrip("-*+ "))))
            elif colon and not _COLON_LABELS.match(colon.group(1).strip()):
                candidates.append((number, index, colon.group(1), _clean(line.lstrip("-*+ "))))
        for index, sentence in zip(prepared.sentence_lines, prepared.sentences, strict=True):
            match = _IS_DEF.match(sentence)
            if match:
                candidates.append((number, index, match.group(1) or match.group(2), sentence))
    found: dict[str, str] = {}
    for _, _, raw, sentence in sorted(candidates, key=lambda c: (c[0], c[1])):  # stable
        term = _term(raw, all_text)
        if term and term.lower() not in {t.lower() for t in found}:
            found[term] = sentence
    return found


def _term(raw: str, all_text: str) -> str | None:
    """A defining phrase's subject as a concept name, or None when it is no term ("It is a",
    "This step is the", a stop word at either end, more than four words)."""
    words = _clean(raw).strip(" .:-—–").split()
    if words and words[0].lower() in ("the", "a", "an"):
        words = words[1:]
    if not words or len(words) > 4:
        return None
    if words[0].lower() in _PRONOUN_SUBJECTS or words[0].lower() in _STOP:
        return None
    if words[-1].lower() in _STOP or any(not re.search(r"[A-Za-z]", w) for w in words):
        return None
    term = " ".join(words)
    # "Force is ..." opens a sentence: write it in lower case unless the first word is a
    # name (capitalised somewhere mid-sentence, like "Newton's") or an acronym ("DNA").
    first = words[0]
    if first[:1].isupper() and not any(c.isupper() for c in first[1:]):
        mid_sentence = re.search(rf"(?<![.!?:\s])[ \t]+{re.escape(first)}\b", all_text)
        if mid_sentence is None:
            term = term[0].lower() + term[1:]
    return term


# --------------------------------------------------------------------------- key concepts

_DETERMINERS = _wordset("the a an this that these those its their his her our your my")
_WORD = re.compile(r"[A-Za-z][A-Za-z'’-]*[A-Za-z]|[A-Za-z]")


def _key_concepts(sections: list[_Prepared], definitions: dict[str, str]) -> list[str]:
    """Defined terms first, then the most frequent content words and two-word phrases."""
    runs: list[list[str]] = []  # runs of words with no punctuation between them
    for prepared in sections:
        texts = ([prepared.title] if prepared.title else []) + prepared.sentences
        for text in texts:
            for chunk in re.split(r"[,;:()\"“”!?.\[\]{}/—–]+", text):
                words = [w.lower().replace("’", "'") for w in _WORD.findall(chunk)]
                if words:
                    runs.append(words)
    vocabulary = {w for run in runs for w in run}

    def fold(word: str) -> str:
        if word.endswith("s") and not word.endswith(("ss", "us", "is")) and word[:-1] in vocabulary:
            return word[:-1]
        return word

    def content(word: str) -> bool:
        return (
            len(word) >= 3
            and word not in _STOP
            and not word.endswith("ly")
            and "'" not in word
            and as_verb[word] <= as_noun[word]
        )

    # A word right before a determiner ("Measure the", "compute a") is used as a verb there;
    # words used so more often than after one ("the state") are left out as not noun-ish.
    as_verb: Counter[str] = Counter()
    as_noun: Counter[str] = Counter()
    for run in runs:
        for before, word, after in zip(["", *run[:-1]], run, [*run[1:], ""], strict=True):
            as_verb[word] += after in _DETERMINERS
            as_noun[word] += before in _DETERMINERS
    unigrams: Counter[str] = Counter()
    bigrams: Counter[str] = Counter()
    first_seen: dict[str, int] = {}
    position = 0
    for run in runs:
        folded = [fold(w) for w in run]
        for i, word in enumerate(folded):
            position += 1
            if not content(word):
                continue
            unigrams[word] += 1
            first_seen.setdefault(word, position)
            if i + 1 < len(folded) and content(folded[i + 1]):
                pair = f"{word} {folded[i + 1]}"
                bigrams[pair] += 1
                first_seen.setdefault(pair, position)
    scored = [(2 * n, t) for t, n in bigrams.items() if n >= 2]
    scored += [(n, t) for t, n in unigrams.items() if n >= 2]
    scored.sort(key=lambda item: (-item[0], first_seen[item[1]]))

    chosen = list(definitions)
    lowered = " ".join(" ".join(run) for run in runs)
    counts = {**unigrams, **bigrams}
    for term in definitions:  # defined phrases of any length: their count in the text
        counts.setdefault(term.lower(), len(re.findall(rf"\b{re.escape(term.lower())}\b", lowered)))
    for _, term in scored:
        if len(chosen) >= MAX_KEY_CONCEPTS:
            break
        if any(term == c.lower() for c in chosen):
            continue
        if " " not in term and any(
            term in c.lower().split() and unigrams[term] < 2 * counts.get(c.lower(), 1)
            for c in chosen
            if " " in c
        ):
            continue  # the word's count is mostly that phrase's
        chosen.append(term)
    return chosen[:MAX_KEY_CONCEPTS]


# --------------------------------------------------------------------------- procedures

_NUMBERED_STRICT = re.compile(r"^\s*(?:(\d{1,2})[.)]|step\s+(\d{1,2})\s*[:.)-]?)\s+(\S.*)$", re.I)
_BULLET = re.compile(r"^\s*[-*+•]\s+(\S.*)$")
_SEQUENCE = re.compile(
    r"^(first(?:ly)?|second(?:ly)?|third(?:ly)?|next|then|after that|afterwards|finally|"
    r"lastly)\b,?\s*(.+)$",
    re.IGNORECASE,
)


def _procedures(sections: list[_Prepared]) -> list[Procedure]:
    procedures: list[Procedure] = []
    unnamed = 0
    for prepared in sections:
        found = _numbered_lists(prepared.lines)
        if not found and prepared.title and _PROCEDURE_HEADING.search(prepared.title):
            bullets = [_clean(m.group(1)) for m in map(_BULLET.match, prepared.lines) if m]
            if len(bullets) >= 2:
                found.append((None, bullets))
        if not found:
            steps = _sequence_steps(prepared.sentences)
            if steps:
                found.append((None, steps))
        for index, (intro, steps) in enumerate(found):
            if prepared.title and intro and len(found) > 1:
                name = f"{prepared.title}: {intro}"
            elif prepared.title:
                name = prepared.title if len(found) == 1 else f"{prepared.title} ({index + 1})"
            elif intro:
                name = intro
            else:
                unnamed += 1
                name = f"Procedure {unnamed}"
            procedures.append(Procedure(name=name, key_steps=steps))
    return procedures


def _numbered_lists(lines: list[str]) -> list[tuple[str | None, list[str]]]:
    """(introducing line or None, steps) for each run of items numbered 1, 2, 3, ..."""
    lists: list[tuple[str | None, list[str]]] = []
    steps: list[str] = []
    intro: str | None = None
    previous_prose: str | None = None

    def close() -> None:
        if len(steps) >= 2:
            lists.append((intro, [_clean(s) for s in steps]))
        steps.clear()

    for line in lines:
        match = _NUMBERED_STRICT.match(line)
        number = int(match.group(1) or match.group(2)) if match else None
        if match and number == 1:
            close()
            intro = previous_prose.rstrip(":").strip() if previous_prose else None
            steps.append(match.group(3))
        elif match and steps and number == len(steps) + 1:
            steps.append(match.group(3))
        elif not line.strip():
            continue
        elif steps and not re.search(r"[.!?:;]\s*$", steps[-1]) and line.strip()[:1].islower():
            steps[-1] = f"{steps[-1]} {line.strip()}"  # a wrapped step (PDF text)
        elif steps and line.startswith(("  ", "\t")):
            steps[-1] = f"{steps[-1]} {line.strip()}"  # an indented continuation (Markdown)
        else:
            close()
            stripped = _clean(line)
            previous_prose = stripped if stripped.endswith(":") else None
    close()
    return lists


def _sequence_steps(sentences: list[str]) -> list[str]:
    """ "First, ... Then ... Finally ..." as steps (the sequence word dropped), when the run
    starts with "first" and has at least three steps."""
    steps: list[str] = []
    for sentence in sentences:
        match = _SEQUENCE.match(sentence)
        if not match:
            if steps:
                break
            continue
        if not steps and not match.group(1).lower().startswith("first"):
            continue
        rest = match.group(2).strip()
        steps.append(rest[:1].upper() + rest[1:])
    return steps if len(steps) >= 3 else []


# --------------------------------------------------------------------------- objectives etc.


def _listed_or_said(
    sections: list[_Prepared], heading: re.Pattern[str], words: re.Pattern[str], limit: int
) -> list[str]:
    """Items listed under a matching heading, then sentences that say it, deduplicated."""
    found: list[str] = []
    for prepared in sections:
        if prepared.title and heading.search(prepared.title):
            found.extend(prepared.sentences)
    for prepared in sections:
        found.extend(s for s in prepared.sentences if words.search(s))
    return _dedupe(found)[:limit]


def _dedupe(items) -> list[str]:
    seen: set[str] = set()
    kept = []
    for item in items:
        key = item.strip().lower()
        if key and key not in seen:
            seen.add(key)
            kept.append(item.strip())
    return kept


def _syllables(word: str) -> int:
    groups = re.findall(r"[aeiouy]+", word.lower())
    count = len(groups) - (1 if word.lower().endswith("e") and len(groups) > 1 else 0)
    return max(1, count)


def flesch_kincaid_grade(sentences: list[str]) -> float:
    """0.39 x words per sentence + 11.8 x syllables per word - 15.59 (0.0 for no words)."""
    counted = [words for s in sentences if (words := _WORD.findall(s))]
    total = sum(len(words) for words in counted)
    if not total:
        return 0.0
    syllables = sum(_syllables(w) for words in counted for w in words)
    return 0.39 * total / len(counted) + 11.8 * syllables / total - 15.59


def _difficulty(sentences: list[str]) -> str:
    grade = flesch_kincaid_grade(sentences)
    return "beginner" if grade < 8 else "intermediate" if grade < 12 else "advanced"


def _subject(text: str) -> str:
    """The subject whose keywords occur most (ties: the earlier subject in the table)."""
    lowered = text.lower()
    best, best_hits = "general", MIN_SUBJECT_HITS - 1
    for subject, keywords in SUBJECT_KEYWORDS.items():
        hits = sum(len(re.findall(rf"\b{re.escape(k)}\b", lowered)) for k in keywords)
        if hits > best_hits:
            best, best_hits = subject, hits
    return best
