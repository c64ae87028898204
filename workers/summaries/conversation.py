"""Reading a commitment in its conversation: hedged, taken back, or only small talk.

A phrase like "I'll call the recruiter" is a commitment only in context. The client may hedge
it ("I might…"), take it back minutes later ("actually, scratch that"), or say it about their
weekend while the coach is still asking how the holiday went. These checks look at the
sentences around a commitment; the offline engine applies them, and the memory and the
briefing only ever see what survives.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from workers.summaries.text import STOPWORDS, Sentence, content_words, turns

_HEDGE = re.compile(
    r"\b(?:might|may|maybe|perhaps|probably|hopefully|possibly|try to|try and|see if|if I (?:can|get|have|find)|"
    r"if there'?s time|I think I'?ll|I guess I'?ll|ideally)\b",
    re.I,
)

# Taking back what was just said, pointing at it rather than naming it.
_TAKE_BACK = re.compile(
    r"\b(?:scratch that|forget (?:that|it|I said that|what I said)|strike that|take (?:that|this|it) back|"
    r"never ?mind|on second thoughts?|second thoughts|not realistic|that'?s not going to happen|"
    r"cross that (?:off|out)|ignore (?:that|what I said)|(?:that'?s|this is) not a good idea|no, wait|"
    r"that won'?t work|on reflection)\b",
    re.I,
)
# Saying one will not do something after all; tied to a commitment by the words they share.
_WONT = re.compile(
    r"\b(?:I|we)\s*(?:won'?t|will not|(?:'m|am|are|'re) not (?:going to|gonna)|(?:don'?t|do not) think I'?ll|"
    r"(?:'m|am) not (?:doing|going to do)|(?:'ll|will) (?:skip|leave|drop|hold off on)|shouldn'?t|"
    r"(?:'d|would) rather not|(?:'m|am) dropping|(?:'m|am) not sure I'?ll)\b|"
    r"\bforget (?:about )?(?:the|my)\b|\b(?:drop|scrap|skip) the\b|\bleave (?:the|my) .{0,40}\bfor now\b|(?:\bnot\b|n't|\bno\b)[^.!?]*\bafter all\b",
    re.I,
)


def tentative(text: str) -> bool:
    """Whether a commitment's sentence hedges it ("I might…", "I'll try to…", "probably")."""
    return bool(_HEDGE.search(text))


def turn_numbers(said: Sequence[Sentence]) -> list[int]:
    """For each sentence, the number of the turn it is in."""
    return [number for number, turn in enumerate(turns(said)) for _ in turn]


def prompt_words(said: Sequence[Sentence], index: int) -> set[str]:
    """The content words of the other person's turn just before sentence `index`: what a
    commitment answers ("And what about the recruiter, Tom?"), and so part of what it is about."""
    speaker, words = said[index].speaker, set()
    position = index - 1
    while position >= 0 and said[position].speaker == speaker:
        position -= 1
    while position >= 0 and said[position].speaker != speaker:
        words |= content_words(said[position].text)
        position -= 1
    return words


def withdrawn(said: Sequence[Sentence], candidates: Sequence[tuple[int, str]], *, within_turns: int = 2) -> set[int]:
    """Which `candidates` ((sentence index, commitment text), in order) are taken back later.

    A pointing retraction ("actually, scratch that", "on second thought…") takes back the
    speaker's latest commitment when it comes in the rest of that turn or their next
    `within_turns` turns. A named one ("I don't think I'll call the recruiter after all")
    takes back an earlier commitment of theirs it shares two content words with, counting
    the question the commitment answered (one word, for a short commitment).
    """
    turn = turn_numbers(said)
    gone: set[int] = set()
    for position, sentence in enumerate(said):
        pointing, named = _TAKE_BACK.search(sentence.text), _WONT.search(sentence.text)
        if not (pointing or named):
            continue
        own = [k for k, (at, _) in enumerate(candidates)
               if at < position and said[at].speaker == sentence.speaker and k not in gone]
        if pointing and own:
            # "Let me take that back, the email on Friday": the one it names, else the latest.
            said_now = content_words(sentence.text[pointing.end():])
            named_one = max(own, key=lambda k: (len(content_words(candidates[k][1]) & said_now), k))
            latest = named_one if len(content_words(candidates[named_one][1]) & said_now) >= 2 else own[-1]
            # Their turns alternate with the other person's: two of theirs later is four on.
            if turn[position] - turn[candidates[latest][0]] <= 2 * within_turns:
                gone.add(latest)
                continue
        if named:
            said_now = content_words(sentence.text)
            for k in own:
                at, what = candidates[k]
                wanted = content_words(what)
                shared = wanted & said_now
                if shared and len(shared | (prompt_words(said, at) & said_now)) >= min(2, len(wanted)):
                    gone.add(k)
    return gone


# What people plan outside the work: said while the coach is still catching up, or about leisure.
_LEISURE = re.compile(
    r"\b(?:vacation|dinner|barbecue|party|birthday|match|football|game|film|movie|"
    r"cinema|series|episode|concert|festival|restaurant|pizza|takeaway|beach|picnic|camping|"
    r"garden(?:ing)?|bake|cake|wedding|anniversary|cousins?|grandma|granny|nephew|niece|"
    r"trip|flight|hotel|museum|shopping|pub|drinks|brunch|season tickets?|tickets|paint(?:ing)?|decorating|"
    r"cabin|lake|treehouse|crêpes|skiing|swimming|cottage)\b",
    re.I,
)
# Times off work: "How was the weekend?" is catching up, but "by the weekend" can be a due date.
_TIME_OFF = re.compile(r"\b(?:weekend|holidays?|vacation|easter|christmas|half[- ]term|sun|weather)\b", re.I)
# The coach turning to the session's work; what comes before it is catching up.
_AGENDA = re.compile(
    r"\b(?:what would you like to (?:focus on|work on|talk about|look at|bring)|what do you want to "
    r"(?:focus on|work on|talk about|get out of)|where (?:shall|should|would you like to|do you want to) "
    r"(?:we )?start|what'?s on your mind|what shall we (?:work on|look at|focus on)|let'?s (?:get started|dive in|"
    r"start with|turn to|get into it|get to work|look at)|shall we (?:get started|start|begin|dive in|get into)|"
    r"what would make (?:today|this session)|last time (?:you|we)|how did (?:it|the) .* go|"
    r"shall we (?:talk about|look at|turn to|get to|move on to|move to|focus on)|tell me (?:a bit |a little |more )?"
    r"(?:about|where)|(?:let'?s )?start with|you said there was something|what did you want to (?:talk about|bring|work on)|"
    r"what'?s on the agenda|let'?s talk about|"
    r"(?:since|from) (?:last time|our last session))\b",
    re.I,
)
# The coach asking what the client will do: the answer is work, whatever it is about.
_ACTION_QUESTION = re.compile(
    r"\b(?:what will you|what are you going to|what'?s (?:one|the first|your next|the next)|"
    r"what could you|what would you (?:like to )?(?:do|try|commit)|next step|by when|when will you|"
    r"how will you|what can you|what do you want to do|which (?:one|of those) will you|commit to)\b",
    re.I,
)


def work_starts(said: Sequence[Sentence], coach: set[str]) -> int:
    """The index of the first sentence of the session's work: the coach's first turn to the
    agenda, or 0 when no such turn is found (then everything is read as work)."""
    for index, sentence in enumerate(said):
        # "How did the painting go?" is still catching up; "How did the talk with Ana go?" is work.
        if sentence.speaker and sentence.speaker.lower() in coach and _AGENDA.search(sentence.text) \
                and not (_LEISURE.search(sentence.text) or _TIME_OFF.search(sentence.text)):
            return index
    return 0


def small_talk(said: Sequence[Sentence], index: int, coach: set[str], work_from: int) -> bool:
    """Whether the plan said in sentence `index` is small talk, not a coaching commitment.

    Work, whatever it is about: an answer to the coach's question about what the client will
    do. Small talk: a plan said before the coach turns to the work (sentence `work_from`), or
    a plan about leisure.
    """
    for before in reversed(said[max(0, index - 3): index]):
        if before.speaker and before.speaker.lower() in coach:
            if _ACTION_QUESTION.search(before.text):
                return False
            break
    if index < work_from:
        return True
    return bool(_LEISURE.search(said[index].text))


# A bare object pronoun: "apply for it", "send that by Friday"; not "that I", not "this week".
_PRONOUN_OBJECT = re.compile(
    r"(?<![-\w])(?:it|that|this|them|those)(?=\s*$|\s*[,.;?!]|\s+(?:by|on|before|after|to|for|with|next|"
    r"tomorrow|today|tonight|later|again|first|and|when|over|up|out|in|off|back)\b)", re.I)
_DETERMINER = frozenset("the your my a an that this our their his her".split())
_LINKS = frozenset("of for on about in with".split())


# Words for when and how, never what "it" is: "the end of May", "the deadline on that".
_NOT_A_THING = frozenset(content_words(
    "time way end start beginning middle deadline moment minute hour day week weekend month year "
    "morning afternoon evening night today tomorrow"))


def _noun_phrases(text: str) -> list[str]:
    """Determiner-led phrases of up to four words that carry meaning: "the team lead opening"."""
    words = re.findall(r"[A-Za-z][A-Za-z'-]*", text)
    out = []
    for i, word in enumerate(words):
        if word.lower() not in _DETERMINER:
            continue
        phrase = [word]
        j = i + 1
        while j < len(words) and len(phrase) < 5:
            follower = words[j]
            if follower.lower() in STOPWORDS or (follower[0].isupper() and len(phrase) > 1):
                break
            phrase.append(follower)
            j += 1
        head = phrase[1:]
        # "a meetup for women in engineering": what it is for or about belongs to it.
        if len(phrase) > 1 and j + 1 < len(words) and words[j].lower() in _LINKS \
                and words[j + 1].lower() not in STOPWORDS:
            tail = [words[j]]
            for follower in words[j + 1: j + 5]:
                if follower.lower() in STOPWORDS and follower.lower() not in _LINKS:
                    break
                tail.append(follower)
            while tail and tail[-1].lower() in _LINKS:
                tail.pop()
            phrase += tail
        if head and content_words(" ".join(head)) - _NOT_A_THING:
            out.append(" ".join(phrase))
    return out


_SWAP = {"your": "my", "yours": "mine", "my": "your"}
_POINTS_BACK = re.compile(r"^(?:it|that|this)(?:'s|'d|'ll| is| was| would| will)\b|" + _PRONOUN_OBJECT.pattern, re.I)


def spell_out(what: str, said: Sequence[Sentence], index: int) -> str:
    """`what` with a bare "it"/"that"/"them" replaced by what it refers to in the sentences
    just before, so a commitment can be recognised later ("apply for it" → "apply for the
    team lead role"). Unchanged when the pronoun has no clear antecedent."""
    match = _PRONOUN_OBJECT.search(what)
    if not match or match.start() == 0:
        return what
    speaker = said[index].speaker
    for before in reversed(said[max(0, index - 6): index + 1]):
        text = before.text if before is not said[index] else before.text[: before.text.lower().find(what.lower()[:20])]
        # A sentence that itself points back ("What's the deadline on that?", "It's close")
        # is about the same thing: its own phrases are not what "it" is.
        if before is not said[index] and _POINTS_BACK.search(text):
            continue
        phrases = _noun_phrases(text)
        if phrases:
            # A thing just introduced ("there's a research fellowship at the university") is
            # what is talked about next; otherwise the nearest phrase.
            introduced = [p for p in phrases if p.split()[0].lower() in ("a", "an")]
            first, _, rest = (introduced[0] if introduced else phrases[-1]).partition(" ")
            first = first.lower()
            if before.speaker != speaker:
                first = _SWAP.get(first, first)
            # "There's a platform lead role…" — "I'll apply for it": the role, by now.
            first = "the" if first in ("a", "an") else first
            return what[: match.start()] + f"{first} {rest}" + what[match.end():]
    return what
