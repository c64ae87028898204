"""Search over a coach's transcripts through a blind index, alike on SQLite and Postgres.

Passages are sealed under each client's key (models/sealing.py), so no database text index can
read them. Instead every passage's words are reduced to stems (Snowball English) and each stem
is named by a keyed HMAC under the client's search key (the bound key provider's `blind`): one
SearchTerm row per (client, blind name) packs that stem's postings in the client's passages,
passage ids with how often the stem occurs. A query names its words the same way once per
client of the coach, reads those rows and intersects them. Shredding a client's key leaves the
client's rows unlinkable to any word (erasure deletes them as well).

A query is plain words: every word must occur in the passage, and the last one may be the start
of a word (search as you type). No blind name can be matched by prefix, so each client also has
a sealed vocabulary of its distinct words, in buckets named blindly by the words' first three
letters; a query opens the one bucket its last word falls in to learn which words it begins.
Common English words (Postgres's `english` stop list) are neither indexed nor
searched. Nothing a user types reaches SQL except as a bound parameter.

Writers hold the client's row lock (workers/fence.py) while they change a client's index, so
two transcripts of one client never merge postings at once."""

from __future__ import annotations

import bisect
import re
import sys
import unicodedata
from array import array
from collections import Counter, defaultdict
from dataclasses import dataclass
from functools import lru_cache

import snowballstemmer
from sqlalchemy import bindparam, delete, insert, select, update
from sqlmodel import Session

from models import sealing
from models.tables import Client, SearchTerm, SearchVocabulary, TranscriptPassage

# Letters and digits only, split at everything else (apostrophes and underscores included).
_WORD = re.compile(r"[^\W_]+")
MAX_WORDS = 8
MAX_WORD_LENGTH = 64
# A shorter last word is matched whole: a one- or two-letter start would union the postings of
# hundreds of words.
MIN_PREFIX = 3
# The most words of one client's vocabulary that a typed start stands for (commonest stems are
# no more likely than others to be meant, so the first in order are taken).
MAX_EXPANSION = 200
SNIPPET_WORDS = 16
# How a search is answered: fewer than WINDOW matching passages are ranked by how often they
# hold the words; more, for words that say little about any one passage, are listed the most
# recently transcribed first.
WINDOW = 500

# Postgres's english.stop: words too common to tell one passage from another.
STOP_WORDS = frozenset("""
i me my myself we our ours ourselves you your yours yourself yourselves he him his himself she
her hers herself it its itself they them their theirs themselves what which who whom this that
these those am is are was were be been being have has had having do does did doing a an the and
but if or because as until while of at by for with about against between into through during
before after above below to from up down in out on off over under again further then once here
there when where why how all any both each few more most other some such no nor not only own
same so than too very s t can will just don should now
""".split())

_STEMMER = snowballstemmer.stemmer("english")


@dataclass(frozen=True)
class Hit:
    session_id: str
    client_id: str
    start: float
    snippet: str


@lru_cache(maxsize=200_000)
def stem(word: str) -> str:
    return _STEMMER.stemWord(word)


def _spoken(text: str) -> list[str]:
    return _WORD.findall(unicodedata.normalize("NFC", text or "").lower())


def words_of(query: str) -> list[str]:
    """The words a query searches for: lower-cased, without stop words or repeats."""
    words: list[str] = []
    for word in _spoken(query):
        if word not in STOP_WORDS and len(word) <= MAX_WORD_LENGTH and word not in words:
            words.append(word)
            if len(words) == MAX_WORDS:
                break
    return words


def indexed_words(text: str) -> list[str]:
    """The words of a passage that the index holds, in order, repeats kept."""
    return [w for w in _spoken(text) if w not in STOP_WORDS and len(w) <= MAX_WORD_LENGTH]


# --- postings ------------------------------------------------------------------------------
# A posting list is the passage ids (uint32, ascending) followed by one count byte per id.

def _pack(ids: array, counts) -> bytes:
    if sys.byteorder == "big":
        ids = array("I", ids)
        ids.byteswap()
    return ids.tobytes() + bytes(counts)


def _unpack(blob: bytes) -> tuple[array, bytes]:
    n = len(blob) // 5
    ids = array("I")
    ids.frombytes(blob[:4 * n])
    if sys.byteorder == "big":
        ids.byteswap()
    return ids, blob[4 * n:]


def _merged(old: tuple[array, bytes], ids: array, counts) -> bytes:
    """Old postings with new ones: appended when all are newer (a new transcript), else merged."""
    old_ids, old_counts = old
    ascending = all(a < b for a, b in zip(ids, ids[1:]))
    if ascending and (not old_ids or old_ids[-1] < ids[0]):
        return _pack(old_ids + ids, bytes(old_counts) + bytes(counts))
    posts = dict(zip(old_ids, old_counts))
    posts.update(zip(ids, counts))
    order = array("I", sorted(posts))
    return _pack(order, bytes(posts[i] for i in order))


def _count_in(posting: tuple[array, bytes], passage_id: int) -> int:
    ids, counts = posting
    at = bisect.bisect_left(ids, passage_id)
    return counts[at] if at < len(ids) and ids[at] == passage_id else 0


class ClientIndex:
    """One client's additions to the index, gathered before they are written: per stem, the
    passage ids and counts (kept compact: a bulk load gathers millions)."""

    def __init__(self) -> None:
        self.postings: dict[str, tuple[array, bytearray]] = {}
        self.words: set[str] = set()

    def add(self, passage_id: int, text: str) -> None:
        words = indexed_words(text)
        self.words.update(words)
        for term, n in Counter(map(stem, words)).items():
            got = self.postings.get(term)
            if got is None:
                got = self.postings[term] = (array("I"), bytearray())
            got[0].append(passage_id)
            got[1].append(min(n, 255))


def _blind(provider, client_id: str, terms) -> dict[str, int]:
    names = provider.blind(client_id, terms)
    if names is None:
        raise LookupError(f"the key of client {client_id} is gone; nothing of theirs is indexed")
    return names


def _chunks(items: list, size: int = 500):
    for at in range(0, len(items), size):
        yield items[at:at + size]


def _start_of(word: str) -> str:
    """The blind name's source for the bucket of the vocabulary that holds `word` (a stem never
    holds a colon, so the two kinds of names cannot meet)."""
    return "start:" + word[:MIN_PREFIX]


def _starts(words) -> set[str]:
    """The buckets `words` fall in (a word shorter than a start is never looked up by one)."""
    return {_start_of(w) for w in words if len(w) >= MIN_PREFIX}


def _vocabulary_aad(client_id: str, bucket: int) -> bytes:
    return sealing.associated_data(SearchVocabulary.__tablename__, "words", f"{client_id}/{bucket}",
                                   client_id, client_id)


def _read_buckets(db, provider, coach_id: str, wanted) -> dict[tuple[int, str], list[str]]:
    """The words of the buckets named in `wanted` ((blind name, client) pairs), opened."""
    table = SearchVocabulary.__table__
    found = {}
    wanted = set(wanted)
    for chunk in _chunks(sorted(wanted), 400):
        # Two IN lists over the key's columns, read by the index; the pairs are checked here.
        rows = db.execute(select(table.c.client_id, table.c.bucket, table.c.words).where(
            table.c.coach_id == coach_id, table.c.client_id.in_({c for _, c in chunk}),
            table.c.bucket.in_({b for b, _ in chunk}))).all()
        for cid, bucket, token in rows:
            if (bucket, cid) not in wanted:
                continue
            raw = provider.open(cid, token, _vocabulary_aad(cid, bucket))
            found[(bucket, cid)] = raw.decode().split("\n") if raw else []
    return found


def _write_buckets(db, provider, coach_id: str, client_id: str, words, names: dict[str, int],
                   existing: dict[tuple[int, str], list[str]]) -> None:
    """Add `words` to the client's vocabulary: each bucket they fall in is written again."""
    table = SearchVocabulary.__table__
    by_start: dict[str, set[str]] = defaultdict(set)
    for word in words:
        if len(word) >= MIN_PREFIX:
            by_start[_start_of(word)].add(word)
    new, changed = [], []
    for start, more in by_start.items():
        bucket = names[start]
        old = existing.get((bucket, client_id))
        if old is not None and more <= set(old):
            continue
        sealed = provider.seal(client_id, "\n".join(sorted(more.union(old or ()))).encode(),
                               _vocabulary_aad(client_id, bucket))
        if old is None:
            new.append({"client_id": client_id, "bucket": bucket, "coach_id": coach_id, "words": sealed})
        else:
            changed.append({"c": client_id, "b": bucket, "w": sealed})
    if new:
        db.execute(insert(table), new)
    if changed:
        db.execute(update(table).where(table.c.client_id == bindparam("c"), table.c.bucket ==
                                       bindparam("b")).values(words=bindparam("w")), changed)


def write_index(db, provider, coach_id: str, client_id: str, added: ClientIndex) -> None:
    """Merge `added` into the client's index (a Session or a Connection; see the module note on
    locking)."""
    if not added.postings:
        return
    table = SearchTerm.__table__
    names = _blind(provider, client_id, added.postings)
    by_name = {names[t]: posts for t, posts in added.postings.items()}
    existing = {}
    for chunk in _chunks(list(by_name)):
        existing.update(db.execute(select(table.c.term, table.c.postings).where(
            table.c.client_id == client_id, table.c.term.in_(chunk))).all())
    changed, new = [], []
    for name, (ids, counts) in by_name.items():
        if name in existing:
            changed.append({"t": name, "c": client_id, "p": _merged(_unpack(existing[name]), ids, counts)})
        else:
            new.append({"term": name, "client_id": client_id, "coach_id": coach_id,
                        "postings": _merged((array("I"), b""), ids, counts)})
    if changed:
        db.execute(update(table).where(table.c.term == bindparam("t"), table.c.client_id ==
                                       bindparam("c")).values(postings=bindparam("p")), changed)
    if new:
        db.execute(insert(table), new)
    starts = _blind(provider, client_id, _starts(added.words))
    existing_words = _read_buckets(db, provider, coach_id, [(n, client_id) for n in starts.values()])
    _write_buckets(db, provider, coach_id, client_id, added.words, starts, existing_words)


def index_passages(db: Session, passages) -> None:
    """Add flushed passages (their ids assigned) to their clients' index."""
    provider = sealing.provider_for(db)
    grouped: dict[tuple[str, str], ClientIndex] = defaultdict(ClientIndex)
    for p in passages:
        grouped[(p.coach_id, p.client_id)].add(p.id, p.text)
    for (coach_id, client_id), added in grouped.items():
        write_index(db, provider, coach_id, client_id, added)


def forget_passages(db: Session, coach_id: str, client_id: str, passages) -> None:
    """Take passages (loaded, so still readable) out of the client's index before they are
    deleted: their ids leave every posting list, and the vocabulary is rebuilt from what
    remains, so no word of theirs is left to find."""
    passages = list(passages)
    if not passages:
        return
    provider = sealing.provider_for(db)
    table = SearchTerm.__table__
    gone = {p.id for p in passages}
    terms = {stem(w) for p in passages for w in indexed_words(p.text or "")}
    names = provider.blind(client_id, terms)
    if names:
        for chunk in _chunks(list(names.values())):
            for name, blob in db.execute(select(table.c.term, table.c.postings).where(
                    table.c.client_id == client_id, table.c.term.in_(chunk))).all():
                ids, counts = _unpack(blob)
                kept = [(i, n) for i, n in zip(ids, counts) if i not in gone]
                where = (table.c.term == name) & (table.c.client_id == client_id)
                if kept:
                    db.execute(update(table).where(where).values(postings=_pack(
                        array("I", (i for i, _ in kept)), bytes(n for _, n in kept))))
                else:
                    db.execute(delete(table).where(where))
    remaining = db.execute(select(TranscriptPassage).where(
        TranscriptPassage.coach_id == coach_id, TranscriptPassage.client_id == client_id,
        TranscriptPassage.id.not_in(gone))).scalars()
    words = {w for p in remaining for w in indexed_words(p.text or "")}
    db.execute(delete(SearchVocabulary.__table__).where(SearchVocabulary.__table__.c.client_id == client_id))
    starts = provider.blind(client_id, _starts(words))
    if starts:
        _write_buckets(db, provider, coach_id, client_id, words, starts, {})


def forget_client(db: Session, coach_id: str, client_id: str) -> None:
    """Delete everything the index holds for a client."""
    for table in (SearchTerm.__table__, SearchVocabulary.__table__):
        db.execute(delete(table).where(table.c.coach_id == coach_id, table.c.client_id == client_id))


# --- searching ------------------------------------------------------------------------------

def _starting_with(vocabulary: list[str], start: str) -> list[str]:
    at = bisect.bisect_left(vocabulary, start)
    found = []
    while at < len(vocabulary) and vocabulary[at].startswith(start) and len(found) < MAX_EXPANSION:
        found.append(vocabulary[at])
        at += 1
    return found


def _groups_for(words: list[str], vocabulary: list[str] | None) -> list[set[str]]:
    """The stems a passage must hold, one set of alternatives per query word: the last word
    also stands for every word of the client's vocabulary that it begins."""
    groups = [{stem(w)} for w in words[:-1]]
    last = words[-1]
    alternatives = {stem(last)}
    if vocabulary:
        alternatives |= {stem(w) for w in _starting_with(vocabulary, last)}
    return groups + [alternatives]


@dataclass
class _Match:
    client_id: str
    ids: set[int]                                    # the matching passages
    postings: dict[str, tuple[array, bytes]]         # stem -> its posting list
    groups: list[set[str]]

    def score(self, passage_id: int) -> int:
        return sum(_count_in(self.postings[t], passage_id)
                   for group in self.groups for t in group if t in self.postings)

    @property
    def stems(self) -> set[str]:
        return set(self.postings)


def _intersect(groups: list[set[str]], postings: dict[str, tuple[array, bytes]]) -> set[int]:
    """The passages holding some stem of every group, starting from the rarest group."""
    def size(group):
        return sum(len(postings[t][0]) for t in group if t in postings)

    found: set[int] | None = None
    for group in sorted(groups, key=size):
        present = [t for t in group if t in postings]
        if not present:
            return set()
        if found is None:
            found = set(postings[present[0]][0]).union(*(postings[t][0] for t in present[1:]))
        else:
            found = {i for i in found if any(_count_in(postings[t], i) for t in present)}
        if not found:
            return set()
    return found or set()


def _matches(db, provider, coach_id: str, client_ids: list[str], words: list[str]) -> list[_Match]:
    """Per client, the passages holding every word: one read of the vocabularies (only when
    the last word may be a start) and one of the index rows, for all the clients at once."""
    vocabularies: dict[str, list[str]] = {}
    if len(words[-1]) >= MIN_PREFIX:
        start = _start_of(words[-1])
        buckets = []
        for cid in client_ids:
            name = provider.blind(cid, [start])
            if name:
                buckets.append((name[start], cid))
        opened = _read_buckets(db, provider, coach_id, buckets)
        vocabularies = {cid: found for (_, cid), found in opened.items()}
    # (blind name, client) -> stem: two clients' names may meet, so rows are read by both.
    wanted: dict[tuple[int, str], str] = {}
    groups_of: dict[str, list[set[str]]] = {}
    for cid in client_ids:
        groups = _groups_for(words, vocabularies.get(cid))
        names = provider.blind(cid, set().union(*groups))
        if names:  # None: the client's key is shredded, and nothing of theirs can be found
            groups_of[cid] = groups
            wanted.update({(n, cid): t for t, n in names.items()})
    table = SearchTerm.__table__
    postings: dict[str, dict[str, tuple[array, bytes]]] = defaultdict(dict)
    for chunk in _chunks(sorted(wanted), 400):
        for cid, name, blob in db.execute(select(table.c.client_id, table.c.term, table.c.postings).where(
                table.c.coach_id == coach_id, table.c.term.in_({n for n, _ in chunk}),
                table.c.client_id.in_({c for _, c in chunk}))).all():
            if (name, cid) in wanted:
                postings[cid][wanted[(name, cid)]] = _unpack(blob)
    found = []
    for cid, groups in groups_of.items():
        ids = _intersect(groups, postings[cid])
        if ids:
            found.append(_Match(cid, ids, postings[cid], groups))
    return found


def _snippet(text: str, stems: set[str]) -> str:
    """About SNIPPET_WORDS words around the most matches, the matching words in [brackets]."""
    text = unicodedata.normalize("NFC", text or "")
    spans = [(m.start(), m.end(), stem(m.group().lower()) in stems and
              m.group().lower() not in STOP_WORDS) for m in _WORD.finditer(text)]
    if not spans:
        return ""
    marks = [int(hit) for *_, hit in spans]
    width = min(SNIPPET_WORDS, len(spans))
    best, best_at, running = -1, 0, sum(marks[:width])
    for at in range(len(spans) - width + 1):
        if at:
            running += marks[at + width - 1] - marks[at - 1]
        if running > best:
            best, best_at = running, at
    chosen = spans[best_at:best_at + width]
    out, cursor = [], chosen[0][0]
    for begin, end, hit in chosen:
        out.append(text[cursor:begin])
        out.append(f"[{text[begin:end]}]" if hit else text[begin:end])
        cursor = end
    body = "".join(out)
    return ("…" if best_at else "") + body + ("…" if best_at + width < len(spans) else "")


def search_passages(db: Session, coach_id: str, query: str, limit: int = 20,
                    client_id: str | None = None) -> list[Hit]:
    """The coach's passages (or one client's) that contain every word of `query`, best first
    (see WINDOW), at most `limit` of them (and never more than WINDOW)."""
    words = words_of(query)
    if not words or limit <= 0:
        return []
    limit = min(int(limit), WINDOW)
    provider = sealing.provider_for(db)
    clients = select(Client.id).where(Client.coach_id == coach_id, Client.withdrawn_at.is_(None))
    if client_id:
        clients = clients.where(Client.id == client_id)
    matches = _matches(db, provider, coach_id, list(db.execute(clients).scalars()), words)
    of = {i: m for m in matches for i in m.ids}
    if len(of) >= WINDOW:
        ranked = sorted(of, reverse=True)
    else:
        ranked = sorted(of, key=lambda i: (-of[i].score(i), -i))
    hits: list[Hit] = []
    # The index scoped the search already; the passages are read again under the coach (and
    # client), so a posting left behind by a row deleted without the index never shows.
    for chunk in _chunks(ranked, limit):
        rows = {p.id: p for p in db.execute(select(TranscriptPassage).where(
            TranscriptPassage.id.in_(chunk), TranscriptPassage.coach_id == coach_id)).scalars()}
        for i in chunk:
            p = rows.get(i)
            if p is not None and p.client_id == of[i].client_id and p.text is not None:
                hits.append(Hit(p.session_id, p.client_id, float(p.start), _snippet(p.text, of[i].stems)))
                if len(hits) == limit:
                    return hits
    return hits
