"""Synthetic one-hour coaching transcripts, written straight into the database for the search
tests and `bench/search.py`. Deterministic for a seed, with needle phrases planted at known
(coach, session, passage) places so that search results can be checked exactly.

    from bench.synth_transcripts import generate
    corpus = generate(engine, transcripts=40, coaches=4)      # migrated, field keys bound

Passages are written as the pipeline leaves them: sealed under their client's key, with the
client's blind index (models/search.py), so the engine needs field keys bound to it
(models.sealing.bind). With `plaintext=True` they are written in the clear instead, for a
database migrated only as far as revision 0008, whose FTS5/tsvector index is the baseline
bench/search.py compares against.

Words follow a Zipf-like law over spoken filler, coaching talk and a long tail of rare made-up
words (names, jargon), so there are words in nearly every passage and words in a handful.
Needle words are built from syllables of z and x, letters that start no vocabulary word, so a
needle (or a prefix of one) matches only where it was planted.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from sqlalchemy import column, insert, table, text
from sqlalchemy.engine import Engine

from models import sealing, search
from models.tables import Client, CoachingSession, passage_row

PASSAGE_SECONDS = (27.0, 33.0)      # ~120 passages to the hour, as workers.transcripts.passages
SESSION_SECONDS = 3600.0
WORDS_PER_PASSAGE = (60, 90)
CLIENTS_PER_COACH = 25
BATCH_ROWS = 20_000
# Straight to the table: the rows hold ciphertext already (or, for the baseline, no sealed type).
_INSERT = ('INSERT INTO transcriptpassage (id, coach_id, client_id, session_id, start, "end", text) '
           "VALUES (:id, :coach_id, :client_id, :session_id, :start, :end, :text)")

# Spoken filler and function words, roughly most frequent first.
_FILLER = """
i you the and to that a it of is in like so know just was what we but my me have this not
really do be about with for they on yeah can he she there if at all going more because how
would want get one some been when him her them or then um uh right think okay mean well maybe
kind sort thing things something lot people way now also actually said say see go were are
had their our your which who could should very much even still back out up down over little bit
said yes no got make made take things sure feel time good probably already again always never
mm hmm guess different first last next other new same whole pretty quite whatever anyway
""".split()

# Coaching talk, roughly most frequent first.
_COACHING = """
work team manager feel goal week project meeting conversation feedback job role boss
colleague deadline family kids partner home stress confidence boundaries priorities energy
tired sleep balance career promotion review performance leadership decision change values
purpose motivation habit progress plan strategy commitment accountability homework practice
reflect insight awareness pattern belief assumption fear worry overwhelmed burnout pressure
expectations trust relationship communication difficult challenge opportunity strength growth
learning skills delegate email calendar schedule morning evening weekend holiday mother father
parents sister brother friends client customers sales budget quarter board presentation
interview hiring conflict tension frustrated angry sad happy proud excited grateful curious
vulnerable honest authentic courage patience listen support permission clarity focus
intention vision mission impact influence stakeholder director executive ceo founder startup
company organisation culture restructuring redundancy layoff salary negotiation raise bonus
mentor sponsor network visibility credibility reputation imposter syndrome perfectionism
procrastination avoidance resistance judgement criticism compassion kindness rest recovery
health exercise running gym walking meditation journaling breathing anxiety panic calm
grounded present mindful body tension shoulders headache illness doctor therapy therapist
marriage divorce wedding baby pregnancy childcare school teacher homework exams university
move moving house mortgage money finances savings retirement pension freedom choice control
agency ownership responsibility blame guilt shame resentment forgiveness apology repair
boundary saying request ask asking demand negotiate compromise agreement disagreement
argument silence pause question answer curiosity wondering noticing realising realised
shift reframe perspective story narrative identity self worth esteem belonging loneliness
isolation connection community colleagues peers direct reports reporting hierarchy politics
alliance ally champion advocate voice speak speaking meetings agenda minutes notes follow
deadlines launch release roadmap milestone target metrics numbers results outcome success
failure mistake risk experiment pilot trial test iteration learning curve onboarding
offboarding resignation notice leaving staying options decision criteria pros cons gut
instinct intuition logic data evidence hypothesis coaching session sessions commitments
accountable follow-up check-in reflection exercises assignment reading book podcast course
training workshop retreat conference travel flights jetlag routine rhythm cadence weekly
daily monthly quarterly annual appraisal objectives okrs kpis scorecard dashboard report
""".split()

_CONSONANTS = "bcdfghjklmnprstvw"   # no x or z: those are kept for needles
_VOWELS = "aeiou"


def _dedupe(words):
    seen, out = set(), []
    for w in words:
        if w not in seen:
            seen.add(w)
            out.append(w)
    return out


def build_vocabulary(size: int = 20_000, seed: int = 1) -> list[str]:
    """Filler, then coaching words, then made-up rare words, most frequent first."""
    rng = random.Random(seed)
    vocab = _dedupe(_FILLER + _COACHING)
    taken = set(vocab)
    while len(vocab) < size:
        word = "".join(rng.choice(_CONSONANTS) + rng.choice(_VOWELS)
                       for _ in range(rng.randint(2, 4))) + rng.choice(("", "n", "r", "s", "t", "l"))
        if word not in taken:
            taken.add(word)
            vocab.append(word)
    assert not any(w[0] in "xz" for w in vocab)
    return vocab


def zipf_cum_weights(n: int, s: float = 1.2, q: float = 2.7) -> list[float]:
    """Cumulative Zipf-Mandelbrot weights for ranks 1..n."""
    total, cum = 0.0, []
    for rank in range(1, n + 1):
        total += 1.0 / (rank + q) ** s
        cum.append(total)
    return cum


@dataclass(frozen=True)
class Needle:
    """A query whose exact hits are known: (session_id, client_id, start) per planted passage."""
    query: str
    coach_id: str
    hits: frozenset[tuple[str, str, float]]
    kind: str  # unique | shared | and_both | and_first | and_second


@dataclass
class Corpus:
    coach_ids: list[str]
    session_ids_by_coach: dict[str, list[str]]
    client_ids_by_coach: dict[str, list[str]]
    transcripts: int
    passages: int
    words: int
    seconds: float
    needles: list[Needle] = field(default_factory=list)
    vocabulary: list[str] = field(default_factory=list)

    def needles_for(self, coach_id: str, kind: str | None = None) -> list[Needle]:
        return [n for n in self.needles if n.coach_id == coach_id and (kind is None or n.kind == kind)]

    def to_json(self) -> dict:
        return {"coach_ids": self.coach_ids, "session_ids_by_coach": self.session_ids_by_coach,
                "client_ids_by_coach": self.client_ids_by_coach, "transcripts": self.transcripts,
                "passages": self.passages, "words": self.words, "seconds": self.seconds,
                "vocabulary_size": len(self.vocabulary),
                "needles": [{"query": n.query, "coach_id": n.coach_id, "kind": n.kind,
                             "hits": sorted(n.hits)} for n in self.needles]}

    @classmethod
    def from_json(cls, data: dict) -> "Corpus":
        needles = [Needle(n["query"], n["coach_id"], frozenset(tuple(h) for h in n["hits"]), n["kind"])
                   for n in data["needles"]]
        return cls(data["coach_ids"], data["session_ids_by_coach"], data["client_ids_by_coach"],
                   data["transcripts"], data["passages"], data["words"], data["seconds"], needles,
                   build_vocabulary(data["vocabulary_size"]))


def _hex(rng: random.Random) -> str:
    return f"{rng.getrandbits(128):032x}"


def _needle_words(rng: random.Random, count: int) -> list[str]:
    # All of one length and ending in k, which no stemmer strips: no needle is a prefix of
    # another, before or after stemming.
    syllables = [c + v for c in "zx" for v in _VOWELS]
    words: set[str] = set()
    while len(words) < count:
        words.add("".join(rng.choice(syllables) for _ in range(4)) + "k")
    return sorted(words)


def _sentences(rng: random.Random, words: list[str]) -> str:
    out, i = [], 0
    while i < len(words):
        k = rng.randint(4, 16)
        chunk = words[i:i + k]
        i += k
        chunk[0] = chunk[0].capitalize()
        out.append(" ".join(chunk) + rng.choice(".?,.."))
    return " ".join(out)


def generate(engine: Engine, transcripts: int = 40, coaches: int = 4, seed: int = 7,
             vocabulary_size: int = 20_000, unique_needles: int = 3, progress=None,
             plaintext: bool = False) -> Corpus:
    """Write `transcripts` one-hour sessions (spread evenly over `coaches`) into a migrated
    database and return what was written, with the planted needles."""
    began = time.perf_counter()
    keys = None if plaintext else sealing.provider_for(engine)
    rng = random.Random(seed)
    vocab = build_vocabulary(vocabulary_size)
    cum = zipf_cum_weights(len(vocab))
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)

    coach_ids = [_hex(rng) for _ in range(coaches)]
    coach_rows = [{"id": cid, "email": f"coach{i}@example.com", "name": f"Coach {i}",
                   "slack_user_id": None, "zoom_user_id": f"zoom-coach-{i}", "google_user_id": None,
                   "time_zone": "UTC", "retention_years": 7, "drop_media_after_days": None,
                   "media_policy": "keep_video", "trash_zoom_copies": False,
                   "allow_platform_transcript": True, "created_at": now - timedelta(days=1200)}
                  for i, cid in enumerate(coach_ids)]
    clients = {cid: [_hex(rng) for _ in range(CLIENTS_PER_COACH)] for cid in coach_ids}
    # Names, emails and topics are sealed columns; a search corpus needs none of them.
    client_rows = [{"id": kid, "coach_id": cid, "email": None, "email_hmac": f"synth-{kid}",
                    "name": None, "last_session_at": None,
                    "data_key_id": keys.new_client_key(kid) if keys else None,
                    "withdrawn_at": None, "created_at": now - timedelta(days=1100)}
                   for i, cid in enumerate(coach_ids) for j, kid in enumerate(clients[cid])]

    # Sessions interleave across coaches in time order, as they would arrive in production.
    owners = [coach_ids[i % coaches] for i in range(transcripts)]
    rng.shuffle(owners)
    first = now - timedelta(days=1000)
    step = timedelta(days=1000) / max(transcripts, 1)
    sessions = []  # (session_id, coach_id, client_id, started_at)
    for i, cid in enumerate(owners):
        started = first + step * i + timedelta(minutes=rng.randint(0, 50))
        sessions.append((_hex(rng), cid, rng.choice(clients[cid]), started))
    session_rows = [{"id": sid, "coach_id": cid, "client_id": kid, "platform": "zoom",
                     "platform_meeting_id": str(80_000_000_000 + i), "platform_uuid": f"synth-{sid}",
                     "topic": None, "started_at": at, "duration_minutes": 60,
                     "ended_at": at + timedelta(minutes=60), "state": "delivered", "error": None,
                     "reconcile_attempts": 0, "created_at": at, "updated_at": at}
                    for i, (sid, cid, kid, at) in enumerate(sessions)]

    # Plant needles: (session index, passage index) -> words to insert there.
    by_coach: dict[str, list[int]] = {cid: [] for cid in coach_ids}
    for i, (_, cid, _, _) in enumerate(sessions):
        by_coach[cid].append(i)
    per_coach = 2 * unique_needles + 2
    nwords = iter(_needle_words(rng, per_coach * coaches + 2))
    plants: dict[tuple[int, int], list[str]] = {}
    planned: list[tuple[str, str, str, list[tuple[int, int]]]] = []  # query, coach, kind, places

    def place(cid: str) -> tuple[int, int]:
        while True:
            spot = (rng.choice(by_coach[cid]), rng.randrange(2, 110))
            if spot not in plants:
                plants[spot] = []
                return spot

    shared = [next(nwords), next(nwords)]
    for cid in coach_ids:
        if not by_coach[cid]:
            continue
        for _ in range(unique_needles):
            phrase = [next(nwords), next(nwords)]
            spot = place(cid)
            plants[spot] += phrase
            planned.append((" ".join(phrase), cid, "unique", [spot]))
        spot = place(cid)
        plants[spot] += shared
        planned.append((" ".join(shared), cid, "shared", [spot]))
        a, b = next(nwords), next(nwords)
        both, only_a, only_b = place(cid), place(cid), place(cid)
        plants[both] += [a, b]
        plants[only_a].append(a)
        plants[only_b].append(b)
        planned += [(f"{a} {b}", cid, "and_both", [both]), (a, cid, "and_first", [both, only_a]),
                    (b, cid, "and_second", [both, only_b])]

    starts: dict[tuple[int, int], float] = {}
    passages = words = 0
    postgres = engine.dialect.name == "postgresql"
    indexes: dict[tuple[str, str], search.ClientIndex] = {}
    with engine.connect() as conn:
        first_id = conn.execute(text("SELECT coalesce(max(id), 0) + 1 FROM transcriptpassage")).scalar()

    def rows():
        nonlocal words
        lo, hi = WORDS_PER_PASSAGE
        pid = first_id
        for si, (sid, cid, kid, _) in enumerate(sessions):
            t, pi = round(rng.uniform(0.0, 4.0), 2), 0
            while t < SESSION_SECONDS:
                length = round(rng.uniform(*PASSAGE_SECONDS), 2)
                ws = rng.choices(vocab, cum_weights=cum, k=rng.randint(lo, hi))
                for w in plants.get((si, pi), ()):
                    ws.insert(rng.randrange(len(ws) + 1), w)
                if (si, pi) in plants:
                    starts[(si, pi)] = t
                words += len(ws)
                body = _sentences(rng, ws)
                if keys:
                    indexes.setdefault((cid, kid), search.ClientIndex()).add(pid, body)
                    body = keys.seal(kid, body.encode(), sealing.associated_data(
                        "transcriptpassage", "text", passage_row(sid, t), kid, kid))
                yield pid, cid, kid, sid, t, round(t + length, 2), body
                t, pi, pid = round(t + length, 2), pi + 1, pid + 1
            if progress and si % 500 == 499:
                progress(si + 1, len(sessions))

    names = ("id", "coach_id", "client_id", "session_id", "start", "end", "text")
    with engine.connect() as conn:
        raw = conn.connection.driver_connection
        if not postgres:
            # This connection only: the corpus is rebuilt if a crash interrupts the load.
            raw.execute("PRAGMA synchronous=OFF")
            raw.execute("PRAGMA cache_size=-262144")
        try:
            # Only the columns given: the corpus is also loaded at older schema revisions,
            # which lack the coach settings added since (their defaults are the model's).
            conn.execute(insert(table("coach", *(column(k) for k in coach_rows[0]))), coach_rows)
            conn.execute(insert(Client.__table__), client_rows)
            conn.execute(insert(CoachingSession.__table__), session_rows)
            if postgres:
                conn.commit()
                cols = ", ".join(f'"{n}"' for n in names)
                with raw.cursor() as cur, cur.copy(f"COPY transcriptpassage ({cols}) FROM STDIN") as copy:
                    for row in rows():
                        copy.write_row(row)
                        passages += 1
                raw.commit()
                conn.execute(text("SELECT setval(pg_get_serial_sequence('transcriptpassage', 'id'), "
                                  "(SELECT max(id) FROM transcriptpassage))"))
            else:
                batch = []
                for row in rows():
                    batch.append(dict(zip(names, row)))
                    if len(batch) >= BATCH_ROWS:
                        conn.exec_driver_sql(_INSERT, batch)
                        passages += len(batch)
                        batch = []
                        if passages % (10 * BATCH_ROWS) == 0:
                            conn.commit()
                if batch:
                    conn.exec_driver_sql(_INSERT, batch)
                    passages += len(batch)
            for (cid, kid), index in indexes.items():
                search.write_index(conn, keys, cid, kid, index)
            conn.commit()
        finally:
            if not postgres:
                raw.execute("PRAGMA synchronous=NORMAL")
                raw.execute("PRAGMA cache_size=-2000")

    needles = []
    for query, cid, kind, spots in planned:
        hits = frozenset((sessions[si][0], sessions[si][2], starts[(si, pi)]) for si, pi in spots)
        needles.append(Needle(query, cid, hits, kind))
    return Corpus(coach_ids=coach_ids,
                  session_ids_by_coach={c: [sessions[i][0] for i in by_coach[c]] for c in coach_ids},
                  client_ids_by_coach=clients, transcripts=transcripts, passages=passages,
                  words=words, seconds=time.perf_counter() - began, needles=needles, vocabulary=vocab)
