"""Full-text search over a coach's transcripts: FTS5 on SQLite, tsvector on Postgres. Always
scoped to one coach inside the query itself.

A query is plain words: every word must occur in the passage (the last one may be the start of
a word), nothing the user types is read as FTS5 or tsquery syntax, and common English words
(Postgres's `english` stop list, applied on both databases) are ignored."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from sqlalchemy import text
from sqlmodel import Session

# Letters and digits only: both tokenizers split words at everything else (apostrophes and
# underscores included), so no character that either query language treats as syntax survives.
_WORD = re.compile(r"[^\W_]+")
MAX_WORDS = 8
MAX_WORD_LENGTH = 64
# A shorter last word is matched whole: a one- or two-letter prefix would union the postings of
# thousands of words.
MIN_PREFIX = 3
SNIPPET_WORDS = 16

# Postgres's english.stop, which to_tsvector('english', ...) leaves out of the index; SQLite
# indexes them, so the query drops them on both databases to answer alike.
STOP_WORDS = frozenset("""
i me my myself we our ours ourselves you your yours yourself yourselves he him his himself she
her hers herself it its itself they them their theirs themselves what which who whom this that
these those am is are was were be been being have has had having do does did doing a an the and
but if or because as until while of at by for with about against between into through during
before after above below to from up down in out on off over under again further then once here
there when where why how all any both each few more most other some such no nor not only own
same so than too very s t can will just don should now
""".split())


@dataclass(frozen=True)
class Hit:
    session_id: str
    client_id: str
    start: float
    snippet: str


def words_of(query: str) -> list[str]:
    """The words a query searches for: lower-cased, without stop words or repeats."""
    words: list[str] = []
    for word in _WORD.findall(unicodedata.normalize("NFC", query or "")):
        word = word.lower()
        if word not in STOP_WORDS and len(word) <= MAX_WORD_LENGTH and word not in words:
            words.append(word)
            if len(words) == MAX_WORDS:
                break
    return words


def _prefix(words: list[str]) -> bool:
    return len(words[-1]) >= MIN_PREFIX


def fts5_query(coach_id: str, words: list[str]) -> str:
    """An FTS5 MATCH expression: the coach's id in its column, every word in the text."""
    coach = coach_id.replace('"', '""')
    terms = [f'"{w}"' for w in words]
    if _prefix(words):
        terms[-1] += "*"
    return f'coach_id : "{coach}" AND text : ({" ".join(terms)})'


def tsquery(words: list[str]) -> str:
    """A to_tsquery('english', ...) expression: every word, quoted, the last as a prefix."""
    terms = [f"'{w}'" for w in words]
    if _prefix(words):
        terms[-1] += ":*"
    return " & ".join(terms)


_SQLITE = """
    WITH top AS MATERIALIZED (
        SELECT rowid AS id, rank AS r FROM transcriptpassage_fts
        WHERE transcriptpassage_fts MATCH :q AND rank MATCH 'bm25(0.0, 1.0)'
        ORDER BY rank LIMIT :limit)
    SELECT p.session_id, p.client_id, p.start,
           snippet(transcriptpassage_fts, 1, '[', ']', '…', {words})
    FROM top
    JOIN transcriptpassage_fts ON transcriptpassage_fts.rowid = top.id
    JOIN transcriptpassage p ON p.id = top.id
    WHERE transcriptpassage_fts MATCH :q
    ORDER BY top.r, p.id DESC"""

_SQLITE_CLIENT = """
    WITH top AS MATERIALIZED (
        SELECT f.rowid AS id, f.rank AS r FROM transcriptpassage_fts f
        JOIN transcriptpassage p ON p.id = f.rowid
        WHERE f.transcriptpassage_fts MATCH :q AND f.rank MATCH 'bm25(0.0, 1.0)'
          AND p.client_id = :client
        ORDER BY f.rank LIMIT :limit)
    SELECT p.session_id, p.client_id, p.start,
           snippet(transcriptpassage_fts, 1, '[', ']', '…', {words})
    FROM top
    JOIN transcriptpassage_fts ON transcriptpassage_fts.rowid = top.id
    JOIN transcriptpassage p ON p.id = top.id
    WHERE transcriptpassage_fts MATCH :q
    ORDER BY top.r, p.id DESC"""

_POSTGRES = """
    SELECT p.session_id, p.client_id, p.start,
           ts_headline('english', p.text, p.q,
                       'StartSel=[, StopSel=], MaxWords={words}, MinWords=6')
    FROM (SELECT t.id, t.session_id, t.client_id, t.start, t.text, q.q, ts_rank(t.tsv, q.q) AS r
          FROM transcriptpassage t, to_tsquery('english', :q) AS q(q)
          WHERE t.coach_id = :coach AND t.tsv @@ q.q {client}
          ORDER BY r DESC, t.id DESC LIMIT :limit) p
    ORDER BY p.r DESC, p.id DESC"""


def search_passages(db: Session, coach_id: str, query: str, limit: int = 20,
                    client_id: str | None = None) -> list[Hit]:
    words = words_of(query)
    if not words or limit <= 0:
        return []
    params = {"coach": coach_id, "limit": int(limit), "client": client_id}
    if db.get_bind().dialect.name == "postgresql":
        params["q"] = tsquery(words)
        sql = _POSTGRES.format(words=SNIPPET_WORDS, client="AND t.client_id = :client" if client_id else "")
    else:
        params["q"] = fts5_query(coach_id, words)
        sql = (_SQLITE_CLIENT if client_id else _SQLITE).format(words=SNIPPET_WORDS)
    rows = db.execute(text(sql), params).all()
    return [Hit(r[0], r[1], float(r[2]), r[3]) for r in rows]
