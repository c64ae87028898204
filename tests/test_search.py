"""Transcript search on SQLite (FTS5) and Postgres (tsvector) over a small synthetic corpus
with planted needles: exact hits, AND of words, the last word as a prefix, never another
coach's passages, hostile input, and an index that follows deletions."""

from __future__ import annotations

import re
import secrets
from datetime import datetime, timezone

import pytest
from sqlalchemy import delete, insert, select
from sqlmodel import Session

from bench.synth_transcripts import generate
from models.db import make_engine, migrate
from models.search import fts5_query, search_passages, tsquery, words_of
from models.tables import Client, Coach, CoachingSession, TranscriptPassage

HOSTILE = ['"', '""', "*", "NEAR(", "NEAR(a b, 2)", "a:b", "coach_id : x", "!!", "(", ")", "'",
           "' OR 1=1 --", "\" OR text MATCH '*' --", "a & b | !c", "foo:*", "<->", "^start",
           "-excluded", "AND", "OR NOT", "\\", "\x00", "%_", "🙂🔥", "👩‍👩‍👧 family",
           "日本語",
           "ﬁle café Ω", "a" * 10_000, "word " * 2_000, "(" * 5_000 + ")" * 5_000, "\n\t"]


def marked(snippet: str) -> set[str]:
    """The words a snippet marks as matches, lower-cased."""
    return {w.lower() for span in re.findall(r"\[([^\]]*)\]", snippet) for w in re.findall(r"\w+", span)}


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def corpus_db(request, tmp_path_factory):
    """A 40-transcript corpus over 4 coaches, built once per database for the read-only tests."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('search') / 'search.db'}"
    else:
        url = request.getfixturevalue("postgres_server").create_database(f"search_{secrets.token_hex(3)}")
    engine = make_engine(url)
    migrate(engine)
    corpus = generate(engine, transcripts=40, coaches=4)
    yield engine, corpus
    engine.dispose()


def search(engine, coach_id, query, **kwargs):
    with Session(engine) as db:
        return search_passages(db, coach_id, query, **kwargs)


def places(hits):
    return {(h.session_id, h.client_id, h.start) for h in hits}


def test_every_needle_is_found_exactly_where_it_was_planted(corpus_db):
    engine, corpus = corpus_db
    assert len(corpus.needles) == 4 * 7
    for needle in corpus.needles:
        hits = search(engine, needle.coach_id, needle.query)
        assert places(hits) == set(needle.hits), needle
        for hit in hits:
            assert marked(hit.snippet) & set(needle.query.split()), hit.snippet


def test_every_word_must_match(corpus_db):
    engine, corpus = corpus_db
    for coach in corpus.coach_ids:
        both, = corpus.needles_for(coach, "and_both")
        first, = corpus.needles_for(coach, "and_first")
        second, = corpus.needles_for(coach, "and_second")
        assert places(search(engine, coach, both.query)) == set(both.hits)
        assert len(first.hits) == len(second.hits) == 2
        assert set(both.hits) == set(first.hits) & set(second.hits)
        # In either order, and a word found nowhere empties the result.
        assert places(search(engine, coach, f"{second.query} {first.query}")) == set(both.hits)
        assert search(engine, coach, f"{both.query} snarfblat") == []
        hit, = search(engine, coach, both.query)
        assert {first.query, second.query} & marked(hit.snippet)  # both, if they sit close


def test_the_last_word_matches_as_a_prefix(corpus_db):
    engine, corpus = corpus_db
    for needle in (n for c in corpus.coach_ids for n in corpus.needles_for(c, "unique")):
        a, b = needle.query.split()
        assert places(search(engine, needle.coach_id, f"{a} {b[:4]}")) == set(needle.hits)
        assert places(search(engine, needle.coach_id, a[:7])) == set(needle.hits)
        hit, = search(engine, needle.coach_id, b[:7])
        assert b in marked(hit.snippet)
        # Only the last word: a cut-short word before it must match whole.
        assert search(engine, needle.coach_id, f"{a[:7]} {b}") == []


def test_a_word_cut_short_inside_its_ending_still_finds_its_stem(corpus_db):
    # "motivation" is indexed as "motiv", "running" as "run": "motiva" and "runn" are no
    # prefixes of those stems, yet a coach typing them expects those words.
    engine, corpus = corpus_db
    coach = corpus.coach_ids[0]
    for typed, word in (("motiva", "motivation"), ("runn", "running"), ("meeti", "meeting")):
        hits = search(engine, coach, typed, limit=100)
        assert hits, typed
        found = set().union(*(marked(h.snippet) for h in hits))
        assert word in found and all(w.startswith(typed[:3]) for w in found), (typed, found)


def test_no_coach_sees_another_coachs_passages(corpus_db):
    engine, corpus = corpus_db
    a, b = corpus.coach_ids[:2]
    for needle in corpus.needles_for(a, "unique"):
        assert search(engine, b, needle.query) == []
        assert search(engine, b, needle.query.split()[0][:7]) == []
    shared_a, = corpus.needles_for(a, "shared")
    shared_b, = corpus.needles_for(b, "shared")
    assert shared_a.query == shared_b.query and set(shared_a.hits).isdisjoint(shared_b.hits)
    assert places(search(engine, a, shared_a.query)) == set(shared_a.hits)
    assert places(search(engine, b, shared_b.query)) == set(shared_b.hits)
    own = set(corpus.session_ids_by_coach[b])
    for query in ("manager", "feedback", "confid", "work family", "feel"):
        hits = search(engine, b, query)
        assert hits and all(h.session_id in own for h in hits), query
    assert search(engine, "no-such-coach", shared_a.query) == []


def test_a_search_can_be_narrowed_to_one_client(corpus_db):
    engine, corpus = corpus_db
    coach = corpus.coach_ids[2]
    needle = corpus.needles_for(coach, "unique")[0]
    (_, client, _), = needle.hits
    other = next(c for c in corpus.client_ids_by_coach[coach] if c != client)
    assert places(search(engine, coach, needle.query, client_id=client)) == set(needle.hits)
    assert search(engine, coach, needle.query, client_id=other) == []
    hits = search(engine, coach, "manager", client_id=client)
    assert hits and {h.client_id for h in hits} == {client}


def test_common_words_give_a_page_of_the_coachs_passages(corpus_db):
    engine, corpus = corpus_db
    coach = corpus.coach_ids[1]
    hits = search(engine, coach, "like")
    assert len(hits) == 20 and all("[" in h.snippet for h in hits)
    assert len(search(engine, coach, "like", limit=5)) == 5
    assert len({(h.session_id, h.start) for h in search(engine, coach, "like", limit=200)}) == 200


@pytest.mark.parametrize("query", ["", "   ", "the and of", "it is what it is", "!!!", "🙂", "__"])
def test_empty_and_stop_word_queries_find_nothing(corpus_db, query):
    engine, corpus = corpus_db
    assert search(engine, corpus.coach_ids[0], query) == []


def test_hostile_input_is_read_as_plain_words(corpus_db):
    engine, corpus = corpus_db
    coach = corpus.coach_ids[3]
    needle = corpus.needles_for(coach, "unique")[0]
    for query in HOSTILE:
        assert isinstance(search(engine, coach, query), list), query
        # Syntax around a real word changes nothing.
        around = f"{query} {needle.query} {query}"[:20_000]
        assert places(search(engine, coach, around)) <= set(needle.hits), query
    a, b = needle.query.split()
    for query in (f'"{a}" "{b}"', f"{a}* {b}*", f"{a}:{b}", f"-{a} ^{b}", f"({a} OR {b})",
                  f"{a.upper()} & !{b}", f"'{a}' '{b}' --", f"{a}:* | {b}"):
        assert places(search(engine, coach, query)) == set(needle.hits), query
    assert search(engine, coach, f"NEAR({a} {b})") == []  # "near" is a word like any other
    assert search(engine, coach, needle.query, limit=0) == [] == search(engine, coach, needle.query, limit=-3)


def test_query_text_never_reaches_the_query_languages_as_syntax():
    for query in HOSTILE:
        words = words_of(query)
        assert all(re.fullmatch(r"[^\W_]+", w) for w in words), (query, words)
        if words:
            for last in ("bare", "whole", "prefix"):
                fts = fts5_query('co"ach', words, last)
                assert fts.startswith('coach_id : "co""ach" AND text : (')
                assert set(re.sub(r'"[^"]*"', "", fts.split(" AND text : ", 1)[1])) <= set("()* ANDOR"), fts
                ts = tsquery(words, last)
                assert set(re.sub(r"'[^']*'", "", ts)) <= set("()*:&| "), ts
    assert len(words_of("a " * 100 + " ".join(f"w{i}" for i in range(100)))) == 8


def _tiny(url: str):
    engine = make_engine(url)
    migrate(engine)
    return engine, generate(engine, transcripts=4, coaches=2)


def test_deleted_passages_leave_search_at_once(both_databases):
    engine, corpus = _tiny(both_databases)
    needle = corpus.needles_for(corpus.coach_ids[0], "unique")[0]
    (session_id, _, start), = needle.hits
    assert places(search(engine, needle.coach_id, needle.query)) == set(needle.hits)
    with Session(engine) as db:
        db.execute(delete(TranscriptPassage).where(TranscriptPassage.session_id == session_id,
                                                   TranscriptPassage.start == start))
        db.commit()
    assert search(engine, needle.coach_id, needle.query) == []
    assert search(engine, needle.coach_id, needle.query.split()[1][:5]) == []
    # The other needles, and the rest of that session, are still there.
    other = corpus.needles_for(corpus.coach_ids[0], "unique")[1]
    assert places(search(engine, other.coach_id, other.query)) == set(other.hits)
    with Session(engine) as db:
        db.execute(delete(TranscriptPassage).where(TranscriptPassage.session_id.in_(
            corpus.session_ids_by_coach[other.coach_id])))
        db.commit()
    assert search(engine, other.coach_id, other.query) == []
    assert search(engine, other.coach_id, "like") == []
    engine.dispose()


def test_passages_about_the_words_rank_first(both_databases):
    engine, corpus = _tiny(both_databases)
    coach = corpus.coach_ids[1]
    with Session(engine) as db:
        session = db.execute(select(CoachingSession)
                             .where(CoachingSession.coach_id == coach)).scalars().first()
        filler = "we talked about the week and what comes next for the team at work"
        rows = [("once", f"{filler} and the zoxiquent came up"),
                ("thrice", "the zoxiquent again, zoxiquent budget, and zoxiquent plans"),
                ("twice", f"{filler}, zoxiquent then zoxiquent")]
        db.execute(insert(TranscriptPassage.__table__), [
            {"coach_id": coach, "client_id": session.client_id, "session_id": session.id,
             "start": 4000.0 + i, "end": 4030.0 + i, "text": body} for i, (_, body) in enumerate(rows)])
        db.commit()
    hits = search(engine, coach, "zoxiquent")
    assert [h.start for h in hits] == [4001.0, 4002.0, 4000.0]
    assert all("zoxiquent" in marked(h.snippet) for h in hits)
    assert search(engine, corpus.coach_ids[0], "zoxiquent") == []
    engine.dispose()


def test_new_coaches_and_clients_are_searchable_at_once(both_databases):
    engine, corpus = _tiny(both_databases)
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    with Session(engine) as db:
        db.execute(insert(Coach.__table__), [{
            "id": "c0ach", "email": "new@example.com", "name": "New", "time_zone": "UTC",
            "retention_years": 7, "media_policy": "keep_video", "trash_zoom_copies": False,
            "allow_platform_transcript": True, "created_at": now}])
        db.execute(insert(Client.__table__), [{"id": "cl1ent", "coach_id": "c0ach", "email_hmac": "h",
                                               "created_at": now}])
        db.execute(insert(CoachingSession.__table__), [{
            "id": "s3ssion", "coach_id": "c0ach", "client_id": "cl1ent", "platform": "zoom",
            "platform_uuid": "u", "topic": None, "state": "delivered", "reconcile_attempts": 0,
            "created_at": now, "updated_at": now}])
        db.execute(insert(TranscriptPassage.__table__), [{
            "coach_id": "c0ach", "client_id": "cl1ent", "session_id": "s3ssion", "start": 1.5,
            "end": 30.0, "text": "My manager's feedback on the offsite: boundaries, finally."}])
        db.commit()
    hit, = search(engine, "c0ach", "manager boundaries")
    assert (hit.session_id, hit.client_id, hit.start) == ("s3ssion", "cl1ent", 1.5)
    assert {"manager", "boundaries"} <= marked(hit.snippet)
    assert search(engine, "c0ach", "like") == []
    assert search(engine, corpus.coach_ids[0], "offsite") == []
    engine.dispose()
