"""The offline summariser: deterministic, no model, no network. Its output is labelled basic.

It reads the transcript for phrases, not meaning: commitments are first-person promises
("I will…", "I'm going to…"), homework is what the coach sets ("for homework…", "between now
and our next session…"), decisions are "we agreed…"/"I've decided…", open threads are
questions put off ("let's come back to that"), key moments are realisations and strong
feelings, themes are the terms said most. Everything it cites is a sentence it read, so the
citation check keeps it all.
"""

from __future__ import annotations

import collections
import re
from collections.abc import Sequence

from workers.summaries import conversation
from workers.summaries.memory import ClientMemory, detect_progress
from workers.summaries.schema import (
    ClientSummary,
    CoachSummary,
    Commitment,
    Decision,
    GoalTouched,
    Homework,
    KeyMoment,
    apply_citations,
)
from workers.summaries.text import (IRREGULAR_PAST, STOPWORDS, Sentence, content_words, first_of_each, sentences,
                                    stem, to_you, turns)
from workers.transcription import Segment

ENGINE = "offline-basic"

_COMMIT = re.compile(
    r"\b(?P<who>I|we)(?:\s+will|'ll|\s+shall|\s+am going to|'m going to|\s+are going to|"
    r"'re going to|\s+plan to|\s+intend to|\s+commit to|\s+promise to|'m committing to|"
    r"\s+am committing to|'m gonna|\s+am gonna|\s+might|\s+may|'m hoping to|\s+am hoping to)\s+(?P<what>.+?)(?=(?:,?\s+and\s+(?:I|we)(?:\s+will|'ll|\s+am going to|'m going to)\b)|$)",
    re.I,
)
# Other ways of promising, read as "I'll…": "let me dig out the details", "my plan is to…",
# "I can have that to her by Thursday". Only the matching reads them so; the words stay.
_AS_PROMISE = [(re.compile(p, re.I), r) for p, r in (
    (r"\blet me\b", "I'll"), (r"\blet us\b|\blet's\b(?= (?:book|send|schedule|set up|put|look at your))", "we'll"),
    (r"\b(?:my|the) plan is to\b", "I'll"), (r"\b(?:the )?next step for me is(?: to)?\b", "I'll"),
    (r"\bI can have\b", "I'll have"), (r"\bcount me in for\b", "I'll do"),
    (r"\bthat'?s on me\b[,:]?", ""),
)]


def as_promises(text: str) -> str:
    for pattern, replacement in _AS_PROMISE:
        text = pattern.sub(replacement, text)
    return text


# Promises that are figures of speech ("I will admit…") or too vague to hold anyone to.
_NOT_A_PROMISE = re.compile(
    r"^(?:admit|be honest|tell you the truth|see|guess|bet|wait|think|never|be|have to|need|feel|"
    r"find|end up|lose|not|probably not|regret|forget|miss|leave (?:it|that|things|the .{1,40} for now)\b|let it go|"
    r"know|challenge (?:you|\w+) to|say (?:that|this|it|so|what|yes|no)\b|take (?:that|this|it) back|"
    r"get (?:nervous|anxious|angry|upset|bored|tired|scared|stressed|worse|better|used to|lost|stuck|"
    r"back to you on that)|"
    # Moves in the conversation itself: "we'll come to that", "we'll start there".
    r"come (?:back )?to|start (?:there|with|by)|get (?:back )?to|stop there|leave it there|wrap up|"
    r"finish (?:on time|early|there|here|up)|pick (?:that|this|it) up|talk about (?:that|this|it))\b", re.I)
# A few words with no subject of their own, adding to the sentence before: "Next week, face to face."
_FRAGMENT = re.compile(r"^(?!(?:I|we|you|he|she|it|they|that|this|there|so|and|but|okay|ok|yes|yeah|no|um|hm|oh|"
                       r"thanks|thank|great|good|right|well)\b)(?:[\w'-]+,?\s+){0,5}[\w'-]+[.!]$", re.I)
# "I don't think I'll…", "I'm not sure I'll…": said, but not promised.
_DOUBTED = re.compile(r"(?:(?:don'?t|do not|doesn'?t) think|not sure|doubt|no way|not convinced)\W*$", re.I)
# Hedges and fillers between "I'll" and the verb: kept out of the commitment's text.
_SOFTENER = re.compile(r"^(?:(?:probably|definitely|also|just|actually|really|maybe|try to|try and|"
                       r"make sure (?:to|I)|finally|then|first|see if I can|see whether I can|to)\s+)+", re.I)
_HOMEWORK_STRONG = re.compile(
    r"\b(?:for (?:your )?homework|as homework|your homework(?: is)?|"
    r"between now and (?:our |the )?next (?:session|time)|before (?:we meet again|our next session|next session|next time)|"
    r"between sessions|here'?s something to (?:play with|try|work on|experiment with)(?: before we meet| this week)?|"
    r"(?:an? )?assignment for you(?: before we meet again| this week)?|(?:I'?m going to|I'?ll|let me) challenge you to|"
    r"your practice (?:this week|for the week|between sessions)(?: is)?|try this over the next (?:few |two |couple of )?(?:days|weeks?)|"
    r"your (?:assignment|task|challenge|experiment|homework)(?: for (?:the|this) (?:week|fortnight|month)| this week)?(?: is)?|"
    r"this week,? (?:I'?d like you to|I would like you to|try to|practi[cs]e|notice))\b[,:]?\s*",
    re.I,
)
_HOMEWORK_WEAK = re.compile(
    r"\b(?:I'?d like you to|I would like you to|I want you to|I'?d love (?:for )?you to|I'?d invite you to|"
    r"(?:could|can|would) you(?: try to| try and| maybe| possibly)?|would you be willing to|see if you can|"
    r"your (?:job|task|challenge|experiment|exercise) (?:is )?(?:to )?|try to|try and)\s+",
    re.I,
)
# The time between sessions, which makes a request homework rather than a suggestion.
_EVERY_DAY = re.compile(
    r"\b(?:each|every) (?:day|morning|evening|night|time)\b|\bdaily\b|\bthis (?:week|fortnight)\b|"
    r"\bbetween (?:now|sessions|today)\b|\bbefore (?:we (?:meet|speak|talk)|next time|our next|the next)\b|"
    r"\bover the (?:next|coming) (?:few )?(?:days?|weeks?|fortnight)\b|\b(?:until|till|for|by) next time\b|"
    r"\bin the (?:next|coming) (?:few )?(?:days|weeks?)\b|\bhomework\b",
    re.I,
)
_LEAD_IN = re.compile(r"^(?:(?:and|so|then|please|I'?d like you to|I would like you to|I want you to|to|"
                      r"(?:could|can|would) you|,)\s*)+", re.I)
_DECISION = re.compile(
    r"\b(?:I've decided|I have decided|I decided|I decide|we decided|we've decided|we have decided|we agreed|"
    r"(?:\w+ and I|we) (?:have |'ve )?agreed|"
    r"we've agreed|we have agreed|I'm going with|let's go with|the decision is)\b\s*(?:that\s+|to\s+)?(?P<text>.+)",
    re.I,
)
_DEFER = re.compile(
    r"\b(?:let'?s come back to|let us come back to|come back to|park (?:that|this|it)|park the|parked|"
    r"pick (?:that|this|it) up|we (?:didn't|did not|never) (?:really )?(?:get|got) to|ran out of time|run out of time|"
    r"for another (?:session|time|day)|leave (?:that|this|it) for|hold that thought|put a pin in|"
    r"save (?:that|this|it) for|revisit|next time we (?:can|could|should)|not (?:for )?today|"
    r"(?:haven'?t|have not|hasn'?t) (?:yet )?(?:got|gotten|come) (?:back )?to|"
    r"(?:first|main) thing (?:we|to) (?:talk about|look at|do) next|the focus (?:of )?next (?:time|session)|"
    r"table (?:that|this|it)|hold off on|(?:out of|no) time for|(?:spend|give it|give that) (?:proper |more |some )?time|"
    r"(?:talk about|look at|get into) (?:this|that|it) next|first thing next (?:session|time))\b",
    re.I,
)
# What a deferral names itself: "we didn't get to the money side", "let's make your mum's care
# the first thing next session".
_DEFERRED_TOPIC = re.compile(
    r"\b(?:come back to|get to|got to|get back to|got back to|pick up|revisit|park|save|leave|pin in|hold off on|"
    r"time for|time on|table)\s+"
    r"(?P<topic>(?:the|your|my|how|what|why|whether)\b[^.?!,;]*)|"
    r"\blet'?s make (?P<made>(?:the|your|my)\b.+?) (?:the (?:first|main) thing|the focus)",
    re.I,
)
# A deferral remembered, not made: "you raised Lisbon last time and I asked you to hold that thought".
_RECALLED = re.compile(r"\b(?:last time|I asked you to|we said we'?d|you said you'?d)\b", re.I)
_REALISE = re.compile(
    r"\bI (?:just |now |finally )?(?:realized|realised|realize|realise|noticed|learned|learnt|"
    r"understand now|see now|can see|can hear|never thought)\b",
    re.I,
)
_FEELING = re.compile(r"\b(?:I feel|I felt|scared|afraid|proud|relief|relieved|lighter|anxious|overwhelmed|out of my depth)\b", re.I)
_GOAL = re.compile(
    r"\b(?:my goal is to|I want to (?:get better at|become|work on|talk about)|I'd like to (?:become|get better at|work on))\s+(?P<goal>.+)",
    re.I,
)
_WHEN = re.compile(
    r"\b(?:(?:by|before|on|until)\s+(?:the\s+end\s+of\s+(?:the\s+)?(?:week|month|day)|"
    r"(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday)|tomorrow|tonight|"
    r"(?:our|the)\s+next\s+(?:session|meeting|call)|next\s+\w+)|tonight|tomorrow|"
    r"this\s+(?:week|weekend|month|evening|afternoon)|next\s+(?:week|month|session|time)|"
    r"every\s+(?:day|week|morning|evening|(?:monday|tuesday|wednesday|thursday|friday)(?:\s+morning|\s+evening)?)|each\s+day)\b",
    re.I,
)


def _clause(text: str) -> str:
    return text.strip().rstrip(".!").strip()


def _is_coach(speaker: str | None, coach_labels: set[str]) -> bool:
    return bool(speaker) and speaker.lower() in coach_labels


def find_commitments(said: Sequence[Sentence], coach: set[str] = frozenset(),
                     client: str | None = None) -> list[Commitment]:
    """Promises read in their conversation: spelled out, hedged ones marked tentative, the
    ones taken back later in the session and the plans that are only small talk left out.
    `client`: the client's name, so the coach's "I'll send you…" reads "send Robin…"."""
    work_from = conversation.work_starts(said, coach) if coach else 0
    found: list[tuple[int, Commitment]] = []
    for index, sentence in enumerate(said):
        if sentence.text.endswith("?"):
            continue
        read = as_promises(sentence.text)
        for match in _COMMIT.finditer(read):
            raw = _clause(match.group("what"))
            what = _SOFTENER.sub("", raw)
            if _NOT_A_PROMISE.match(what) or len(what.split()) < 2 or not content_words(what):
                continue
            if _DOUBTED.search(read[: match.start()]):
                continue
            if coach and conversation.small_talk(said, index, coach, work_from):
                continue
            what = conversation.spell_out(what, said, index)
            # "I'll sit down with Dev. Properly, an hour at least.": the fragment belongs to it.
            after = said[index + 1] if index + 1 < len(said) else None
            if after and after.speaker == sentence.speaker and match.end() >= len(read.rstrip(" .!")) - 1 \
                    and _FRAGMENT.match(after.text) and not _COMMIT.search(as_promises(after.text)):
                what += ", " + after.text[0].lower() + after.text[1:].rstrip(".!")
            who = sentence.speaker or "Client"
            if client and _is_coach(who, coach):
                what = _to_client(what, client)
            if match.group("who").lower() == "we":
                who = "both"
            when = _WHEN.search(what)
            hedged = match.group(0)[: match.start("what") - match.start()] + " " + raw
            found.append((index, Commitment(
                what=what, who=who, by_when=when.group(0) if when else None,
                source_timestamp=sentence.start,
                tentative=conversation.tentative(hedged) or conversation.tentative(read[: match.start()][-25:]),
            )))
    gone = conversation.withdrawn(said, [(index, c.what) for index, c in found])
    return _restated([c for k, (_, c) in enumerate(found) if k not in gone])


def _to_client(what: str, client: str) -> str:
    """The coach's "send you the article" as the client's page and the memory read it."""
    first = client.split()[0]
    what = re.sub(r"\byour\b", f"{first}'s", what, flags=re.I)
    return re.sub(r"\byou\b", first, what, flags=re.I)


def _restated(commitments: list[Commitment]) -> list[Commitment]:
    """Commitments less the ones said again in other words ("And I'll send you the article"
    in the recap): a later one whose content words are nearly all in an earlier one's."""
    kept: list[Commitment] = []
    for commitment in commitments:
        words = content_words(commitment.what)
        if not any(len(words & content_words(k.what)) >= max(1, 0.75 * len(words)) and k.who == commitment.who
                   for k in kept):
            kept.append(commitment)
    return kept


_ANOTHER = re.compile(r"\b(?:one more|also|alongside|as well|another|and then)\b", re.I)


def find_homework(said: Sequence[Sentence]) -> list[Homework]:
    """What the coach asks the client to do between sessions, said as homework, or as a
    request with the time between sessions ("this week, could you…"), or as one more
    request straight after homework was set ("And one more: could you…")."""
    found, last_set, borrowed = [], None, set()
    for index, sentence in enumerate(said):
        if index in borrowed or sentence.text.endswith("?") and not re.search(r"\b(?:could|can|would) you\b",
                                                                               sentence.text, re.I):
            continue
        strong = _HOMEWORK_STRONG.search(sentence.text)
        weak = _HOMEWORK_WEAK.search(sentence.text) if not strong else None
        # The time between sessions may be set a sentence earlier ("So, before next time…").
        context = sentence.text + " " + (said[index - 1].text if index and said[index - 1].speaker == sentence.speaker else "")
        following_on = last_set is not None and index - last_set <= 6 and _ANOTHER.search(context)
        if weak and not (_EVERY_DAY.search(context) or following_on):
            continue
        match = strong or weak
        if not match:
            continue
        rest = sentence.text[match.end():]
        if strong and (request := _HOMEWORK_WEAK.match(rest)):
            rest = rest[request.end():]  # "between now and next time, could you keep a log…"
        task = _clause(_LEAD_IN.sub("", rest)).rstrip("?")
        after = said[index + 1] if index + 1 < len(said) else None
        if strong and len(task.split()) < 2 and after and after.speaker == sentence.speaker:
            # "Here's something to play with before we meet. Notice each time…": the task is
            # the next sentence (a transcript may put a full stop where the speaker paused).
            again = _HOMEWORK_STRONG.match(after.text)
            task = _clause(_LEAD_IN.sub("", after.text[again.end():] if again else after.text)).rstrip("?")
            borrowed.add(index + 1)
        if len(task.split()) < 2:
            continue
        when = _WHEN.search(sentence.text)
        found.append(Homework(task=task, due=when.group(0) if when else None, source_timestamp=sentence.start))
        last_set = index
    return found


_AGREE_ON = re.compile(r"\b(?:shall|can|could) we agree (?:on this|on that|to this)?[:,]?\s*(?P<text>.+)", re.I)
_AGREED = re.compile(r"^(?:yes|yeah|agreed|deal|okay|ok|absolutely)\b", re.I)


def find_decisions(said: Sequence[Sentence]) -> list[Decision]:
    """What was decided: "I've decided…", "we agreed…", or the coach's "shall we agree on
    this: …?" answered "Yes. Agreed." A decision whose words are in the next sentence ("I've
    decided, actually. I want to go for staff") is read from there, and "it" is spelled out."""
    found = []
    for index, sentence in enumerate(said):
        after = said[index + 1] if index + 1 < len(said) else None
        proposal = _AGREE_ON.search(sentence.text)
        if proposal and after and after.speaker != sentence.speaker and _AGREED.match(after.text):
            found.append(Decision(text=_clause(proposal.group("text")).rstrip("?"), source_timestamp=sentence.start))
            continue
        match = _DECISION.search(sentence.text)
        if sentence.text.endswith("?") or not match:
            continue
        text = _clause(match.group("text"))
        if len(content_words(text)) < 2 and after and after.speaker == sentence.speaker:
            text, sentence = _clause(after.text), after
            index += 1
        if content_words(text):
            found.append(Decision(text=conversation.spell_out(text, said, index), source_timestamp=sentence.start))
    return found


def find_open_threads(said: Sequence[Sentence]) -> list[str]:
    """Topics put off, each named by what it is about, not by the words that parked it.

    "We didn't get to the money side" names its topic; "let's come back to that" points at
    what was just said, so the thread is the sentence before it that says most."""
    threads: list[tuple[int, bool, str]] = []  # (sentence index, named by itself, topic)

    def add(index: int, named: bool, topic: str) -> None:
        # One topic parked in two breaths ("Can we table that? I'd like proper time on my next
        # role next session") is one thread, named by the sentence that names it.
        if threads and index - threads[-1][0] <= 2 and said[threads[-1][0]].speaker == said[index].speaker \
                and not (named and threads[-1][1]):
            if named:
                threads[-1] = (index, named, topic)
            return
        threads.append((index, named, topic))

    for index, sentence in enumerate(said):
        if not _DEFER.search(sentence.text) or _RECALLED.search(sentence.text):
            continue
        named = _DEFERRED_TOPIC.search(sentence.text)
        topic = _clause(named.group("topic") or named.group("made")) if named else ""
        topic = re.sub(r"\s+(?:next time|next session|another time|later|for now|either|too|as well)$", "", topic,
                       flags=re.I)
        if len(content_words(topic)) >= 1 and not re.fullmatch(r"(?:the|your|my)\s+\w+", topic, re.I) \
                or len(content_words(topic)) >= 2:
            # "We didn't get to the money side. What staff pays, and how you'd negotiate."
            after = said[index + 1] if index + 1 < len(said) else None
            if after and after.speaker == sentence.speaker and len(after.text.split()) <= 15 \
                    and not after.text.endswith("?") and not _DEFER.search(after.text) \
                    and not re.match(r"(?:let'?s|so|okay|ok|anyway)\b", after.text, re.I):
                topic += ": " + after.text[0].lower() + after.text[1:].rstrip(".")
            add(index, True, topic[0].upper() + topic[1:])
            continue
        # Earlier sentences, read as whole turns: "Honestly, my sister. Since the funeral…"
        window = said[max(0, index - 4): index]
        spoken = [" ".join(window[p].text for p in turn) for turn in turns(window)]
        before = [text for text in spoken[-2:] if len(content_words(text)) >= 2]
        if before:
            # The last question, else the turn with the most words that carry meaning.
            asked = [s.text for s in said[max(0, index - 2): index] if s.text.endswith("?")
                     and len(content_words(s.text)) >= 2]
            pick = asked[-1] if asked else max(reversed(before), key=lambda text: len(content_words(text)))
            # Less its openers that say nothing: "Oh, and there's another thing."
            parts = re.split(r"(?<=[.!?])\s+", pick)
            while len(parts) > 1 and len(content_words(parts[0])) < 2:
                parts.pop(0)
            pick = " ".join(parts)
            add(index, False, _line(pick, 160))
        else:
            add(index, False, sentence.text)
    return [topic for _, _, topic in threads]


# Words too common in any conversation to name what it was about.
_BLAND = frozenset(
    """good great feel feels felt know think thought said say make made see much many still even
    every first really right sure today week weeks time little always never everything anything
    someone something would could should might must come back looks look sounds thank thanks
    monday tuesday wednesday thursday friday saturday sunday tomorrow yesterday morning
    mornings afternoon evening actually honestly basically probably definitely maybe kind
    month months year years day days tonight start started plan people work speak talk talking
    done doing going getting put take took give gave want wanted need needed try tried
    one two three four five six seven eight nine ten first second third tenth twenty thirty
    early late last next january february march april may june july august september october
    november december""".split()
)


def find_themes(said: Sequence[Sentence], *, limit: int = 6, ignore: frozenset[str] = frozenset()) -> list[str]:
    """The terms said most: two-word terms said at least twice, then words said at least twice.

    Words are counted by stem ("confident", "confidence" apart, but "reports", "report"
    together) and shown in their most frequent spelling.
    """
    def usable(word: str) -> bool:
        return word not in STOPWORDS and word not in _BLAND and word not in ignore and len(word) > 3

    def topic(word: str) -> bool:
        # A past tense ("asked", "sent") says what happened, not what it was about.
        return usable(word) and not word.endswith("ed") and word not in IRREGULAR_PAST

    unigrams: collections.Counter[str] = collections.Counter()
    bigrams: collections.Counter[tuple[str, str]] = collections.Counter()
    spelling: dict[object, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for sentence in said:
        words = re.findall(r"[a-z][a-z']+", sentence.text.lower())
        for a, b in zip(words, words[1:]):
            if usable(a) and usable(b):
                key = (stem(a), stem(b))
                bigrams[key] += 1
                spelling[key][f"{a} {b}"] += 1
        for word in words:
            if topic(word):
                unigrams[stem(word)] += 1
                spelling[stem(word)][word] += 1
    themes, covered = [], set()
    for key, n in bigrams.most_common():
        if n < 2 or len(themes) >= limit // 2:
            break
        themes.append(spelling[key].most_common(1)[0][0])
        covered |= set(key)
    for key, n in unigrams.most_common():
        if len(themes) >= limit or n < 2:
            break
        if key not in covered:
            themes.append(spelling[key].most_common(1)[0][0])
    return themes


def _line(text: str, limit: int = 140) -> str:
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + "…"


def find_key_moments(said: Sequence[Sentence], decisions: Sequence[Decision], *, limit: int = 5) -> list[KeyMoment]:
    scored = []
    for sentence in said:
        score = 2 * bool(_REALISE.search(sentence.text)) + bool(_FEELING.search(sentence.text))
        if score and len(sentence.text.split()) >= 4:
            scored.append((score, sentence.start, _line(sentence.text)))
    scored += [(2, d.source_timestamp, _line("Decided: " + d.text)) for d in decisions]
    best = sorted(scored, key=lambda x: (-x[0], x[1]))[:limit]
    return [KeyMoment(timestamp=t, line=line) for _, t, line in sorted(best, key=lambda x: x[1])]


_FOCUS = re.compile(
    r"\b(?:I(?:'d| would)? (?:like|want|wanted) to (?:talk about|focus on|work on|look at|think about|get into)|"
    r"I(?:'ve| have) been (?:thinking about|struggling with|worrying about)|"
    r"(?:mainly|mostly|really) (?:about|the)|what'?s on my mind is)\s+(?P<focus>[^.!?;]+)",
    re.I,
)
_VERDICT_WORDS = {"done": "done", "dropped": "decided against", "open": "not done yet"}


def _overview(said, coach, themes, decisions, commitments, homework, threads, moved) -> str:
    """A few sentences a coach would write, addressed to the client: what the session was
    about, what moved since last time, what was decided and agreed, what stays open."""
    out = []
    focus = next((m.group("focus").strip() for s in said
                  if not _is_coach(s.speaker, coach) and (m := _FOCUS.search(s.text))), None)
    if focus and len(focus.split()) <= 14:
        out.append(f"You talked about {to_you(focus)}.")
    elif terms := [t for t in themes if " " in t][:2]:
        # Only terms of two words read as a topic ("tracking migration"); single frequent
        # words ("lovely", "better") would make the list of words this sentence replaces.
        out.append("You talked about " + " and ".join(terms) + ".")
    elif not (moved or decisions or commitments or homework or threads):
        out.append("A short session.")
    if moved:
        out.append("Since last time: " + "; ".join(f"{to_you(what)} ({_VERDICT_WORDS[v]})" for what, v in moved) + ".")
    if decisions:
        decided = to_you(decisions[0].text)
        if len(decided) > 1 and decided[1].islower():
            decided = decided[0].lower() + decided[1:]  # "No more nodding" mid-sentence; not "Dev's…"
        out.append(f"You decided {decided}.")
    yours = [c for c in commitments if not _is_coach(c.who, coach)]
    if yours:
        listed = [to_you(c.what) for c in yours[:2]]
        more = len(yours) - len(listed)
        out.append("You'll " + " and ".join(listed) + (f", and {more} more" if more else "") + ".")
    if homework:
        out.append(f"Between sessions: {to_you(homework[0].task)}.")
    if threads:
        out.append(f"Left for next time: {to_you(threads[0])}")
        if not out[-1].endswith((".", "?", "!")):
            out[-1] += "."
    out.append("(Basic summary, made without an AI model.)")
    return " ".join(out)


def summarise_offline(
    segments: Sequence[Segment],
    *,
    memory: ClientMemory | None = None,
    coach_labels: Sequence[str] = ("Coach",),
    session_id: str = "this session",
    people: Sequence[str] = (),
    client_name: str | None = None,
) -> tuple[ClientSummary, CoachSummary]:
    """Both tiers, as separate objects, from the transcript alone (and the memory, if any).

    `coach_labels`: the speaker labels that are the coach (e.g. "Coach" or the coach's name),
    so the coach's own questions are not read as the client's insights. `people`: names said
    in the session (the client's, the coach's), which are who it was with, not what about.
    `client_name`: so what the coach promises the client is written with their name.
    """
    said = sentences(segments)
    coach = {label.lower() for label in coach_labels}
    if not any(_is_coach(s.speaker, coach) for s in said):
        coach = set()  # the coach is not among the labels: read every sentence as anyone's
    clients_words = [s for s in said if not _is_coach(s.speaker, coach)]
    coaches_words = [s for s in said if _is_coach(s.speaker, coach) or not s.speaker] if coach else said

    # Said again later in the session is still one commitment: the first mention is cited.
    commitments = first_of_each(find_commitments(said, coach, client_name), lambda c: c.what)
    # Whose each one is, by the names the client's page uses: the client's, the coach's, both.
    for c in commitments:
        if c.who != "both" and coach_labels:
            c.who = coach_labels[0] if _is_coach(c.who, coach) else (client_name or c.who)
    homework = first_of_each(find_homework(coaches_words), lambda h: h.task)
    decisions = first_of_each(find_decisions(said), lambda d: d.text)
    threads = first_of_each(find_open_threads(said), str)
    names = {s.speaker.lower() for s in said if s.speaker}
    names |= {part.lower() for person in people for part in person.split()}
    themes = find_themes(said, ignore=frozenset(names | {"coach", "client"}))
    insights = first_of_each([s.text for s in clients_words if _REALISE.search(s.text)], str)
    key_moments = find_key_moments(said, decisions)

    goals = []
    moved = []
    still_open = list(memory.open_commitments) if memory else []
    if memory:
        for goal in memory.goals:
            evidence = next((s for s in clients_words if len(content_words(goal.goal) & content_words(s.text)) >= 2), None)
            if evidence:
                goals.append(GoalTouched(goal=goal.goal, progress=evidence.text))
        progress = detect_progress(memory.open_commitments, segments, session_id)
        for index, (verdict, _) in sorted(progress.items()):
            moved.append((memory.open_commitments[index].what, verdict))
        still_open = [c for i, c in enumerate(memory.open_commitments)
                      if i not in progress or progress[i][0] == "open"]
    for sentence in clients_words:
        match = _GOAL.search(sentence.text)
        if match and not any(g.goal == _clause(match.group("goal")) for g in goals):
            goals.append(GoalTouched(goal=_clause(match.group("goal")), progress=None))

    overview = _overview(said, coach, themes, decisions, commitments, homework, threads, moved)
    client = ClientSummary(
        overview=overview,
        themes=themes,
        insights=insights,
        decisions=decisions,
        commitments=commitments,
        homework=homework,
        open_threads=threads,
        key_moments=key_moments,
        goals_touched=goals,
        engine=ENGINE,
        basic=True,
    )
    client = apply_citations(client, segments)
    return client, _coach_tier(said, coach, themes, memory, threads, still_open)


def _coach_tier(
    said: Sequence[Sentence],
    coach: set[str],
    themes: list[str],
    memory: ClientMemory | None,
    threads: list[str],
    still_open: list,
) -> CoachSummary:
    observations = []
    words_by_speaker: collections.Counter[str] = collections.Counter()
    for sentence in said:
        words_by_speaker[sentence.speaker or "unknown"] += len(sentence.text.split())
    total = sum(words_by_speaker.values())
    if total and len(words_by_speaker) > 1:
        shares = ", ".join(f"{name} {100 * n // total}%" for name, n in words_by_speaker.most_common())
        observations.append(f"Share of words spoken: {shares}.")
    coach_questions = sum(1 for s in said if _is_coach(s.speaker, coach) and s.text.endswith("?"))
    if coach_questions:
        observations.append(f"The coach asked {coach_questions} questions.")

    patterns = []
    questions = [f"Come back to: {t}" for t in threads]
    if memory:
        keys = {t.lower() for t in themes}
        for theme in memory.themes:
            if theme.name.lower() in keys:
                patterns.append(f"'{theme.name}' came up again (also in {len(theme.session_ids)} earlier session(s)).")
    for commitment in still_open:
        questions.append(f"Check in on: {commitment.what}")
    return CoachSummary(
        observations=observations,
        hypotheses=[],  # the basic engine does not speculate
        patterns_across_sessions=patterns,
        questions_for_next_time=questions,
        supervision_questions=[],
        engine=ENGINE,
        basic=True,
    )
