"""Text helpers the summary engines share: content words, rough stems, sentences with their times.

Deliberately small and dependency-free: the offline engine and the memory update must run
anywhere, and the citation check must judge every engine's output the same way.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence

from workers.transcription import Segment

STOPWORDS = frozenset(
    """a about above after again against all am an and any are aren't as at be because been before
    being below between both but by can can't cannot could couldn't did didn't do does doesn't doing
    don't down during each few for from further had hadn't has hasn't have haven't having he he'd
    he'll he's her here here's hers herself him himself his how how's i i'd i'll i'm i've if in into
    is isn't it it's its itself just let's me more most mustn't my myself no nor not now of off on
    once only or other ought our ours ourselves out over own really same shan't she she'd she'll
    she's should shouldn't so some such than that that's the their theirs them themselves then there
    there's these they they'd they'll they're they've this those through to too under until up us
    very was wasn't we we'd we'll we're we've were weren't what what's when when's where where's
    which while who who's whom why why's will with won't would wouldn't you you'd you'll you're
    you've your yours yourself yourselves yes yeah okay ok oh um uh going gonna want like get got
    also well thing things something lot bit kind sort maybe one two next time last week""".split()
)

# Past tenses that share no stem with their verb, so "I sent it" supports "send it".
_IRREGULAR = {
    "sent": "send", "did": "do", "done": "do", "wrote": "write", "written": "write",
    "spoke": "speak", "spoken": "speak", "told": "tell", "made": "make", "took": "take",
    "taken": "take", "gave": "give", "given": "give", "met": "meet", "went": "go", "gone": "go",
    "had": "have", "began": "begin", "begun": "begin", "bought": "buy", "brought": "bring",
    "found": "find", "kept": "keep", "left": "leave", "ran": "run", "said": "say",
    "spent": "spend", "thought": "think", "felt": "feel", "held": "hold", "put": "put",
    "chose": "choose", "chosen": "choose", "drew": "draw", "drawn": "draw", "led": "lead",
    "paid": "pay", "read": "read", "sat": "sit", "set": "set",
}
IRREGULAR_PAST = frozenset(past for past, verb in _IRREGULAR.items() if past != verb)


def stem(word: str) -> str:
    """A rough stem: enough for "sending", "sends" and "sent" to meet "send"."""
    word = word.lower().strip("'")
    word = _IRREGULAR.get(word, word)
    base = word
    for suffix in ("ingly", "edly", "ing", "ies", "ied", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            base = word[: -len(suffix)]
            if suffix in ("ies", "ied"):
                base += "y"
            elif suffix in ("ing", "ed") and len(base) > 3 and base[-1] == base[-2] and base[-1] not in "ls":
                base = base[:-1]  # "planned" -> "plan"
            break
    # A silent e goes too, so "share", "shares", "sharing" and "shared" all meet.
    if len(base) > 3 and base.endswith("e"):
        base = base[:-1]
    if len(base) > 4 and base.endswith("is"):
        base = base[:-2] + "iz"  # British -ise meets American -ize
    return base


def content_words(text: str) -> set[str]:
    """Stems of the words that carry meaning (no stopwords, no short words, no numbers)."""
    words = re.findall(r"[a-zA-Z][a-zA-Z']+", text.lower())
    return {stem(w) for w in words if w not in STOPWORDS and len(w) > 2}


def normalise(text: str) -> str:
    """Straight apostrophes and single spaces, so patterns need not care."""
    return " ".join(text.replace("\u2019", "'").replace("\u2018", "'").split())


@dataclasses.dataclass
class Sentence:
    text: str
    start: float  # the start of the segment the sentence begins in
    speaker: str | None


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def sentences(segments: Sequence[Segment]) -> list[Sentence]:
    """The transcript as sentences, each timed by the segment it begins in.

    Consecutive segments of one speaker are read as one text first, because engines cut
    segments mid-sentence ("I will send the" | "proposal by Friday.").
    """
    out: list[Sentence] = []
    i = 0
    while i < len(segments):
        j = i
        text, starts = "", []  # starts: (offset in text, segment start)
        while j < len(segments) and segments[j].speaker == segments[i].speaker:
            piece = normalise(segments[j].text)
            if piece:
                if text:
                    text += " "
                starts.append((len(text), segments[j].start))
                text += piece
            j += 1
        position = 0
        for part in _SENTENCE_END.split(text):
            offset = text.find(part, position)
            position = offset + len(part)
            start = max((t for o, t in starts if o <= offset), default=segments[i].start)
            if part.strip():
                out.append(Sentence(part.strip(), start, segments[i].speaker))
        i = j
    return out


def overlap(a: str, b: str) -> int:
    """How many content words two texts share."""
    return len(content_words(a) & content_words(b))


_SECOND_PERSON = {"my": "your", "myself": "yourself", "i": "you", "me": "you", "mine": "yours", "i'm": "you're",
                  "i've": "you've", "i'll": "you'll", "i'd": "you'd", "am": "are"}
# Longest first, so "I'm" is swapped whole rather than as "I" + "'m".
_FIRST_PERSON = re.compile(r"\b(?:" + "|".join(sorted(map(re.escape, _SECOND_PERSON), key=len, reverse=True)) + r")\b",
                           re.I)


def to_you(text: str) -> str:
    """A client's first-person words addressed back to them: "my manager" → "your manager"."""
    return _FIRST_PERSON.sub(lambda m: _SECOND_PERSON[m.group(0).lower()], text)


def first_of_each(items: list, text_of) -> list:
    """The items in order, each text (compared by its words, any case) only once."""
    seen, out = set(), []
    for item in items:
        key = " ".join(re.findall(r"\w+", text_of(item).lower()))
        if key not in seen:
            seen.add(key)
            out.append(item)
    return out


def turns(said: Sequence[Sentence]) -> list[list[int]]:
    """The indexes of `said` grouped into turns: each a run of one speaker's sentences."""
    grouped: list[list[int]] = []
    for position, sentence in enumerate(said):
        if grouped and said[grouped[-1][-1]].speaker == sentence.speaker:
            grouped[-1].append(position)
        else:
            grouped.append([position])
    return grouped
