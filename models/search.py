"""Full-text search over a coach's transcripts: FTS5 on SQLite, tsvector on Postgres. Always
scoped to one coach inside the query itself."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import text
from sqlmodel import Session

_WORD = re.compile(r"[\w']+", re.UNICODE)


@dataclass(frozen=True)
class Hit:
    session_id: str
    client_id: str
    start: float
    snippet: str


def words_of(query: str) -> list[str]:
    return [w for w in _WORD.findall(query or "") if w.strip("'")][:12]


def search_passages(db: Session, coach_id: str, query: str, limit: int = 20,
                    client_id: str | None = None) -> list[Hit]:
    words = words_of(query)
    if not words:
        return []
    params = {"coach": coach_id, "limit": limit, "client": client_id}
    client_filter = "AND p.client_id = :client" if client_id else ""
    if db.get_bind().dialect.name == "postgresql":
        params["q"] = " & ".join(f"{w}:*" if i == len(words) - 1 else w
                                 for i, w in enumerate(w.replace("'", "") for w in words) if w)
        sql = f"""
            SELECT p.session_id, p.client_id, p.start,
                   ts_headline('english', p.text, q, 'StartSel=[,StopSel=],MaxWords=18,MinWords=8') AS snip
            FROM transcriptpassage p, to_tsquery('english', :q) q
            WHERE p.coach_id = :coach AND p.tsv @@ q {client_filter}
            ORDER BY ts_rank(p.tsv, q) DESC, p.session_id, p.start
            LIMIT :limit"""
    else:
        # Each word quoted (so FTS syntax in the query is inert); the last one as a prefix.
        terms = " ".join(f'"{w.replace(chr(34), "")}"' for w in words[:-1])
        terms += f' "{words[-1].replace(chr(34), "")}"*'
        params["q"] = f'coach_id : "{coach_id}" AND text : ({terms.strip()})'
        sql = f"""
            SELECT p.session_id, p.client_id, p.start,
                   snippet(transcriptpassage_fts, 1, '[', ']', '…', 18) AS snip
            FROM transcriptpassage_fts f JOIN transcriptpassage p ON p.id = f.rowid
            WHERE transcriptpassage_fts MATCH :q AND p.coach_id = :coach {client_filter}
            ORDER BY f.rank, p.session_id, p.start
            LIMIT :limit"""
    rows = db.execute(text(sql), params).all()
    return [Hit(r[0], r[1], float(r[2]), r[3]) for r in rows]
