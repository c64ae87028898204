"""The search holdspace had before the blind index, kept for bench/search.py to time against in
the same run: FTS5 on SQLite and a tsvector on Postgres over plaintext passages, as a database
migrated to revision 0008 indexes them. Not used by the service: its passages are sealed."""

from __future__ import annotations


from sqlalchemy import text
from sqlmodel import Session

from models.search import MIN_PREFIX, SNIPPET_WORDS, STOP_WORDS, WINDOW, Hit, words_of

# Endings the stemmers strip. Both indexes hold stems ("motivation" is indexed as "motiv",
# "running" as "run"), so a last word cut short inside an ending ("motiva", "runn") is no
# prefix of its stem; the query also asks for the word completed with each ending it may have
# started, and the database's own stemmer turns those into the stems it indexed.
_ENDINGS = ("es", "ed", "ing", "er", "ers", "ly", "ness", "ment", "ments", "ful", "fully",
            "less", "able", "ible", "ity", "ities", "bility", "bilities", "ive", "ively", "ative",
            "atives", "ion", "ions", "ation", "ations", "al", "ally", "ical", "ically", "ous",
            "ously", "ance", "ence", "ism", "ist", "ize", "ise", "ies", "ied")
_DOUBLED = ("ing", "ed", "er")  # "runn" -> "running": a consonant doubled before an ending


def completions(word: str) -> list[str]:
    """Whole words that `word` may be the unfinished start of, as far as a stemmer cares."""
    out: list[str] = []
    for ending in _ENDINGS:
        for typed in range(1, len(ending)):
            if word.endswith(ending[:typed]):
                out.append(word + ending[typed:])
    if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "aeiouls":
        out += [word + ending for ending in _DOUBLED]
    return [w for w in dict.fromkeys(out) if w not in STOP_WORDS]


def _last_terms(words: list[str], last: str) -> tuple[str, bool, list[str]]:
    """The last word as `bare` (itself), `whole` (itself or completed) or `prefix` (also every
    word it begins): the word, whether as a prefix, and the completions to add."""
    word = words[-1]
    if last == "bare" or len(word) < MIN_PREFIX:
        return word, False, []
    return word, last == "prefix", completions(word)


def fts5_query(coach_id: str, words: list[str], last: str = "whole") -> str:
    """An FTS5 MATCH expression: the coach's id in its column, every word in the text. Each
    word is a quoted string, so nothing in it is read as FTS5 syntax."""
    coach = coach_id.replace('"', '""')
    word, prefix, more = _last_terms(words, last)
    alternatives = [f'"{word}"' + ("*" if prefix else "")] + [f'"{w}"' for w in more]
    terms = [f'"{w}"' for w in words[:-1]] + ["(" + " OR ".join(alternatives) + ")"]
    return f'coach_id : "{coach}" AND text : ({" AND ".join(terms)})'


def tsquery(words: list[str], last: str = "whole") -> str:
    """A to_tsquery('english', ...) expression alike: every word quoted, so nothing in it is
    read as tsquery syntax."""
    word, prefix, more = _last_terms(words, last)
    alternatives = [f"'{word}'" + (":*" if prefix else "")] + [f"'{w}'" for w in more]
    return " & ".join([f"'{w}'" for w in words[:-1]] + ["(" + " | ".join(alternatives) + ")"])


class _SQLite:
    def __init__(self, db: Session, coach_id: str, client_id: str | None):
        self.db, self.coach_id = db, coach_id
        self.params = {"coach": coach_id, "client": client_id, "window": WINDOW}
        # CROSS JOIN keeps the FTS index the outer loop: it walks the coach's matches in order.
        self.join = ("CROSS JOIN transcriptpassage c ON c.id = f.rowid AND c.client_id = :client"
                     if client_id else "")

    def query(self, words: list[str], last: str) -> str:
        return fts5_query(self.coach_id, words, last)

    def _count(self, q: str, join: str) -> int:
        return self.db.execute(text(f"""
            SELECT count(*) FROM (SELECT f.rowid FROM transcriptpassage_fts f {join}
            WHERE transcriptpassage_fts MATCH :q ORDER BY f.rowid DESC LIMIT :window)"""),
            {**self.params, "q": q}).scalar_one()

    def count_for_coach(self, q: str) -> int:
        return self._count(q, "")

    def probe(self, q: str) -> int:
        return self._count(q, self.join)

    def pick(self, q: str, found: int, limit: int) -> list[Hit]:
        # Snippets come from the scan that picks the passages: asking the index for one rowid
        # later would evaluate the whole query again, once per passage.
        snippet = f"snippet(transcriptpassage_fts, 1, '[', ']', '…', {SNIPPET_WORDS})"
        if found >= WINDOW:
            order, where = "f.rowid DESC", ""
        elif self.join:
            order, where = "bm25(transcriptpassage_fts, 0.0, 1.0), f.rowid DESC", ""
        else:  # FTS5 sorts by rank itself, and makes snippets for the rows returned only
            order, where = "rank", "AND rank MATCH 'bm25(0.0, 1.0)'"
        top = self.db.execute(text(f"""
            SELECT f.rowid, {snippet} FROM transcriptpassage_fts f {self.join}
            WHERE transcriptpassage_fts MATCH :q {where} ORDER BY {order} LIMIT :limit"""),
            {**self.params, "q": q, "limit": limit}).all()
        if not top:
            return []
        # The index scoped the search already; the table says so again, so that no quirk of
        # tokenizing an id could ever hand one coach another's passage.
        ids = ",".join(str(int(r[0])) for r in top)
        meta = {r[0]: r[1:] for r in self.db.execute(text(f"""
            SELECT id, session_id, client_id, start FROM transcriptpassage
            WHERE id IN ({ids}) AND coach_id = :coach"""), self.params)}
        return [Hit(meta[i][0], meta[i][1], float(meta[i][2]), snip) for i, snip in top if i in meta]


class _Postgres:
    def __init__(self, db: Session, coach_id: str, client_id: str | None):
        self.db = db
        self.params = {"coach": coach_id, "client": client_id, "window": WINDOW}
        self.client = "AND t.client_id = :client" if client_id else ""
        self.found: list = []

    def query(self, words: list[str], last: str) -> str:
        return tsquery(words, last)

    def count_for_coach(self, q: str) -> int:
        return self.db.execute(text("""
            SELECT count(*) FROM (SELECT 1 FROM transcriptpassage t
            WHERE t.coach_id = :coach AND t.tsv @@ to_tsquery('english', :q) LIMIT :window) t"""),
            {**self.params, "q": q}).scalar_one()

    def probe(self, q: str) -> int:
        # The matches themselves, with their rank: when there are fewer than WINDOW, pick()
        # ranks these instead of searching again.
        self.found = self.db.execute(text(f"""
            SELECT t.id, ts_rank(t.tsv, to_tsquery('english', :q)) FROM
              (SELECT t.id, t.tsv FROM transcriptpassage t
               WHERE t.coach_id = :coach AND t.tsv @@ to_tsquery('english', :q) {self.client}
               LIMIT :window) t"""), {**self.params, "q": q}).all()
        return len(self.found)

    def pick(self, q: str, found: int, limit: int) -> list[Hit]:
        params = {**self.params, "q": q, "limit": limit}
        if found < WINDOW:
            order = [i for i, _ in sorted(self.found, key=lambda r: (-r[1], -r[0]))[:limit]]
            chosen = "t.id = ANY(:ids)"
            params["ids"] = order
        else:
            chosen = f"""t.id IN (SELECT t.id FROM transcriptpassage t
                WHERE t.coach_id = :coach AND t.tsv @@ to_tsquery('english', :q) {self.client}
                ORDER BY t.id DESC LIMIT :limit)"""
        rows = self.db.execute(text(f"""
            SELECT t.id, t.session_id, t.client_id, t.start,
                   ts_headline('english', t.text, to_tsquery('english', :q),
                               'StartSel=[, StopSel=], MaxWords={SNIPPET_WORDS}, MinWords=6')
            FROM transcriptpassage t WHERE {chosen} AND t.coach_id = :coach"""), params).all()
        hits = {r[0]: Hit(r[1], r[2], float(r[3]), r[4]) for r in rows}
        if found >= WINDOW:
            order = sorted(hits, reverse=True)
        return [hits[i] for i in order if i in hits]


def fts_search(db: Session, coach_id: str, query: str, limit: int = 20,
                    client_id: str | None = None) -> list[Hit]:
    """The coach's passages (or one client's) that contain every word of `query`, best first
    (see WINDOW), at most `limit` of them (and never more than WINDOW)."""
    words = words_of(query)
    if not words or limit <= 0:
        return []
    index = (_Postgres if db.get_bind().dialect.name == "postgresql" else _SQLite)(db, coach_id, client_id)
    limit = min(int(limit), WINDOW)
    last, found = "whole", None
    if len(words[-1]) >= MIN_PREFIX:
        if index.count_for_coach(index.query(words[-1:], "bare")) < WINDOW:
            last = "prefix"
        elif len(words) == 1 and not client_id:
            found = WINDOW  # the search matches at least the passages its one word does
    q = index.query(words, last)
    if found is None:
        found = index.probe(q)
    return index.pick(q, found, limit) if found else []
