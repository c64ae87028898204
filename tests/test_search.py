"""Transcript search through the blind index, on SQLite and Postgres, over a small synthetic
corpus with planted needles: exact hits, AND of words, the last word as a prefix, never another
coach's passages, hostile input, and an index that follows deletions."""

from __future__ import annotations

import re
import secrets
from datetime import datetime, timezone

import pytest
from sqlalchemy import delete, insert, select
from sqlmodel import Session

from bench.synth_transcripts import generate
from models import sealing
from models.db import make_engine, migrate
from models.search import forget_passages, index_passages, search_passages, words_of
from models.tables import Client, Coach, CoachingSession, SearchTerm, TranscriptPassage
from vault import LocalMasterKey, open_vault
from vault.fields import FieldKeys

INDEX = SearchTerm.__table__
HOSTILE = ['"', '""', "*", "NEAR(", "NEAR(a b, 2)", "a:b", "coach_id : x", "!!", "(", ")", "'",
           "' OR 1=1 --", "\" OR text MATCH '*' --", "a & b | !c", "foo:*", "<->", "^start",
           "-excluded", "AND", "OR NOT", "\\", "\x00", "%_", "🙂🔥", "👩‍👩‍👧 family",
           "日本語",
           "ﬁle café Ω", "a" * 10_000, "word " * 2_000, "(" * 5_000 + ")" * 5_000, "\n\t"]


def marked(snippet: str) -> set[str]:
    """The words a snippet marks as matches, lower-cased."""
    return {w.lower() for span in re.findall(r"\[([^\]]*)\]", snippet) for w in re.findall(r"\w+", span)}


def keyed_engine(url: str, vault_dir):
    """A migrated engine whose sealed fields use a file vault in `vault_dir`."""
    engine = make_engine(url)
    sealing.bind(engine, FieldKeys(open_vault(f"file://{vault_dir}", master_key=LocalMasterKey(b"s" * 32))))
    migrate(engine)
    return engine


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def corpus_db(request, tmp_path_factory):
    """A 40-transcript corpus over 4 coaches, built once per database for the read-only tests."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('search') / 'search.db'}"
    else:
        url = request.getfixturevalue("postgres_server").create_database(f"search_{secrets.token_hex(3)}")
    engine = keyed_engine(url, tmp_path_factory.mktemp("vault"))
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


def test_query_words_are_letters_and_digits_only():
    for query in HOSTILE:
        words = words_of(query)
        assert all(re.fullmatch(r"[^\W_]+", w) for w in words), (query, words)
    assert len(words_of("a " * 100 + " ".join(f"w{i}" for i in range(100)))) == 8


def test_the_index_holds_no_word_and_the_passages_no_plaintext(corpus_db):
    engine, corpus = corpus_db
    with engine.connect() as conn:
        texts = [r[0] for r in conn.execute(select(TranscriptPassage.__table__.c.text).limit(200))]
        terms = conn.execute(select(INDEX.c.term, INDEX.c.postings)).all()
    assert texts and all(t.startswith("hsf1:") for t in texts)
    assert terms and all(isinstance(t, int) for t, _ in terms)
    needle = corpus.needles[0].query.split()[0].encode()
    assert not any(needle in blob for _, blob in terms)


def _tiny(url: str, vault_dir):
    engine = keyed_engine(url, vault_dir)
    return engine, generate(engine, transcripts=4, coaches=2)


def _add(engine, coach_id, client_id, session_id, texts, first_start=4000.0):
    """Passages written as the pipeline writes them: sealed, then indexed."""
    with Session(engine) as db:
        rows = [TranscriptPassage(coach_id=coach_id, client_id=client_id, session_id=session_id,
                                  start=first_start + i, end=first_start + 30 + i, text=body)
                for i, body in enumerate(texts)]
        db.add_all(rows)
        db.flush()
        index_passages(db, rows)
        db.commit()


def _forget(engine, *where):
    """Passages deleted as erasure deletes them: out of the index first."""
    with Session(engine) as db:
        rows = db.execute(select(TranscriptPassage).where(*where)).scalars().all()
        by_client = {}
        for row in rows:
            by_client.setdefault((row.coach_id, row.client_id), []).append(row)
        for (coach_id, client_id), chosen in by_client.items():
            forget_passages(db, coach_id, client_id, chosen)
        db.execute(delete(TranscriptPassage).where(TranscriptPassage.id.in_([r.id for r in rows])))
        db.commit()


def test_deleted_passages_leave_search_at_once(both_databases, tmp_path):
    engine, corpus = _tiny(both_databases, tmp_path / "vault")
    needle = corpus.needles_for(corpus.coach_ids[0], "unique")[0]
    (session_id, _, start), = needle.hits
    assert places(search(engine, needle.coach_id, needle.query)) == set(needle.hits)
    _forget(engine, TranscriptPassage.session_id == session_id, TranscriptPassage.start == start)
    assert search(engine, needle.coach_id, needle.query) == []
    assert search(engine, needle.coach_id, needle.query.split()[1][:5]) == []
    # The other needles, and the rest of that session, are still there.
    other = corpus.needles_for(corpus.coach_ids[0], "unique")[1]
    assert places(search(engine, other.coach_id, other.query)) == set(other.hits)
    _forget(engine, TranscriptPassage.session_id.in_(corpus.session_ids_by_coach[other.coach_id]))
    assert search(engine, other.coach_id, other.query) == []
    assert search(engine, other.coach_id, "like") == []
    with engine.connect() as conn:  # nothing of theirs is left in the index either
        assert conn.execute(select(INDEX.c.term).where(INDEX.c.coach_id == other.coach_id)).first() is None
    engine.dispose()


def test_a_row_deleted_behind_the_index_never_shows(both_databases, tmp_path):
    engine, corpus = _tiny(both_databases, tmp_path / "vault")
    needle = corpus.needles_for(corpus.coach_ids[0], "unique")[0]
    (session_id, _, start), = needle.hits
    with Session(engine) as db:
        db.execute(delete(TranscriptPassage).where(TranscriptPassage.session_id == session_id,
                                                   TranscriptPassage.start == start))
        db.commit()
    assert search(engine, needle.coach_id, needle.query) == []
    engine.dispose()


def test_passages_about_the_words_rank_first(both_databases, tmp_path):
    engine, corpus = _tiny(both_databases, tmp_path / "vault")
    coach = corpus.coach_ids[1]
    with Session(engine) as db:
        session = db.execute(select(CoachingSession)
                             .where(CoachingSession.coach_id == coach)).scalars().first()
        filler = "we talked about the week and what comes next for the team at work"
    _add(engine, coach, session.client_id, session.id, [
        f"{filler} and the zoxiquent came up",
        "the zoxiquent again, zoxiquent budget, and zoxiquent plans",
        f"{filler}, zoxiquent then zoxiquent"])
    hits = search(engine, coach, "zoxiquent")
    assert [h.start for h in hits] == [4001.0, 4002.0, 4000.0]
    assert all("zoxiquent" in marked(h.snippet) for h in hits)
    assert search(engine, corpus.coach_ids[0], "zoxiquent") == []
    engine.dispose()


def test_new_coaches_and_clients_are_searchable_at_once(both_databases, tmp_path):
    engine, corpus = _tiny(both_databases, tmp_path / "vault")
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
        db.commit()
    sealing.provider_for(engine).new_client_key("cl1ent")
    _add(engine, "c0ach", "cl1ent", "s3ssion",
         ["My manager's feedback on the offsite: boundaries, finally."], first_start=1.5)
    hit, = search(engine, "c0ach", "manager boundaries")
    assert (hit.session_id, hit.client_id, hit.start) == ("s3ssion", "cl1ent", 1.5)
    assert {"manager", "boundaries"} <= marked(hit.snippet)
    assert search(engine, "c0ach", "like") == []
    assert search(engine, corpus.coach_ids[0], "offsite") == []
    engine.dispose()


def test_the_migration_seals_and_indexes_an_existing_deployments_passages(both_databases, tmp_path):
    from tests.test_sealed_fields import _at_revision
    engine = make_engine(both_databases)
    _at_revision(engine, "0008")
    corpus = generate(engine, transcripts=4, coaches=2, plaintext=True)  # indexed by FTS5/tsvector
    keys = FieldKeys(open_vault(f"file://{tmp_path / 'vault'}", master_key=LocalMasterKey(b"m" * 32)))
    for client_ids in corpus.client_ids_by_coach.values():
        for client_id in client_ids:  # live clients have their keys since revision 0006
            keys.new_client_key(client_id)
    sealing.bind(engine, keys)
    migrate(engine)
    for needle in corpus.needles:
        assert places(search(engine, needle.coach_id, needle.query)) == set(needle.hits), needle
    with engine.connect() as conn:
        texts = conn.execute(select(TranscriptPassage.__table__.c.text)).scalars().all()
        leftovers = conn.exec_driver_sql(
            "SELECT name FROM sqlite_master WHERE name LIKE 'transcriptpassage_%'" if
            engine.dialect.name == "sqlite" else
            "SELECT column_name FROM information_schema.columns WHERE table_name = "
            "'transcriptpassage' AND column_name = 'tsv'").all()
    assert len(texts) == corpus.passages and all(t.startswith("hsf1:") for t in texts)
    assert leftovers == []  # no index over the old plaintext is left behind
    migrate(engine)  # a second run changes nothing
    assert places(search(engine, needle.coach_id, needle.query)) == set(needle.hits)
    engine.dispose()
