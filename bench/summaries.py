"""How well holdspace reads a coaching session: commitments, homework, threads, memory, briefing.

Runs the labelled engagements of bench/coaching/ (tuning and held-out apart, see its
README) through what a session job runs, one session after another so each client's memory
carries over:

- the words: `text` (the true words, timed from their word counts, each turn labelled with
  its speaker's name), `mixed` (every turn spoken by espeak-ng, laid end to end as one track
  and transcribed word by word by the packaged local Whisper, each word's speaker told by
  its voice, as a job does), `platform` (the same words, each given its speaker by a
  platform transcript's cues: the true turns, timed a little off, a fifth of their words
  missing) or `tracks` (one track per participant, silence where the other one talks, as
  Zoom's per-participant files; each transcribed and merged);
- the summary engine (`offline`, or `openai` against OPENAI_BASE_URL, e.g. a llama.cpp server);
- the memory update and the briefing's open items.

Printed per split: precision and recall of commitments, homework, decisions and open threads
(a thread counts when it names its topic), tentative and owner right among the commitments
found, retracted and small-talk plans kept as commitments, memory progress accuracy (the
status of each earlier item a session reports on), briefing correctness (sessions whose
open items are exactly the labelled ones, and items listed / labelled), and with audio the
word error rate, speaker accuracy (words of the true transcript whose speaker is right) and
names heard right. No audio or transcript is written anywhere unless --cache names a folder
for the (synthetic) transcripts.

    .venv/bin/python bench/summaries.py [--words text,mixed,platform,tracks] [--split tuning,heldout]
                                        [--engine offline|openai] [--cache DIR] [--show]
                                        [--no-hotwords] [--only career,wellbeing]
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import hashlib
import io
import json
import os
import random
import re
import shutil
import subprocess
import sys
import time
import wave
from pathlib import Path

import jiwer
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench import coaching_set  # noqa: E402
from workers.summaries.memory import ClientMemory, update_memory  # noqa: E402
from workers.summaries.text import content_words  # noqa: E402
from workers.transcription import Segment  # noqa: E402

DEFAULT_VOICES = {"coach": "en-gb+f3", "client": "en-us+m1"}
WORDS_PER_MINUTE = 160
TURN_GAP = 0.7
ESPEAK_RATE = 22050
RATE = 16000


# --- the words of a session ------------------------------------------------------------------

@dataclasses.dataclass
class Heard:
    segments: list[Segment]
    spans: list[tuple[float, float]]  # each turn's (start, end) on the recording's clock
    seconds: float = 0.0  # transcription time


def _labels(e: coaching_set.Engagement) -> dict[str, str]:
    return {"coach": e.coach, "client": e.client}


def true_words(e: coaching_set.Engagement, s: coaching_set.Session) -> Heard:
    t, segments, spans = 0.0, [], []
    for role, text in s.turns:
        duration = max(1.0, len(text.split()) * 60.0 / WORDS_PER_MINUTE)
        segments.append(Segment(round(t, 3), round(t + duration, 3), text, _labels(e)[role]))
        spans.append((t, t + duration))
        t += duration + TURN_GAP
    return Heard(segments, spans)


def espeak_voice(voice: str) -> str:
    """The espeak-ng voice that sounds as `voice` is meant to. espeak-ng 1.51 ignores a variant
    on "en-gb" ("en-gb+f3" and "en-gb+m3" come out the same male voice), so two such voices
    would be one speaker; its British "en-gb-x-rp" honours them."""
    return "en-gb-x-rp+" + voice.split("+", 1)[1] if voice.startswith("en-gb+") else voice


def _espeak(text: str, voice: str) -> np.ndarray:
    out = subprocess.run(["espeak-ng", "-v", espeak_voice(voice), "-s", str(WORDS_PER_MINUTE), "--stdout", text],
                         check=True, capture_output=True).stdout
    with wave.open(io.BytesIO(out)) as w:
        samples = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    return samples.astype(np.float32) / 32768.0


def _to_16k(samples: np.ndarray) -> np.ndarray:
    # Linear interpolation is enough for synthetic speech going into Whisper's 16 kHz front end.
    n = int(len(samples) * RATE / ESPEAK_RATE)
    return np.interp(np.arange(n) * ESPEAK_RATE / RATE, np.arange(len(samples)), samples).astype(np.float32)


def speak(e: coaching_set.Engagement, s: coaching_set.Session):
    """(mixed, {role: track}, spans): the session spoken, in memory, 16 kHz mono float32."""
    voices = {**DEFAULT_VOICES, **e.voices}
    gap = np.zeros(int(TURN_GAP * RATE), np.float32)
    mixed, tracks, spans, t = [], {"coach": [], "client": []}, [], 0
    for role, text in s.turns:
        speech = _to_16k(_espeak(text, voices[role]))
        spans.append((t / RATE, (t + len(speech)) / RATE))
        mixed += [speech, gap]
        for other, track in tracks.items():
            track += [speech if other == role else np.zeros_like(speech), gap]
        t += len(speech) + len(gap)
    return (np.concatenate(mixed), {r: np.concatenate(v) for r, v in tracks.items()}, spans)


def platform_cues(e, s, spans, seed: int = 0) -> list[Segment]:
    """What a platform's own transcript gives: each turn under its speaker's name, timed a few
    tenths of a second off, with a fifth of its words missing (their words are worse)."""
    rng = random.Random(f"{seed}-{s.id}")
    return [Segment(max(0.0, a + rng.uniform(-0.3, 0.3)), b + rng.uniform(-0.3, 0.3),
                    " ".join(w for w in text.split() if rng.random() > 0.2), _labels(e)[role])
            for (role, text), (a, b) in zip(s.turns, spans)]


def _cached(path: Path | None, make):
    if path and path.exists():
        data = json.loads(path.read_text())
        return [Segment.from_dict(d) for d in data["segments"]], [tuple(x) for x in data["spans"]], data["seconds"]
    segments, spans, seconds = make()
    if path:
        path.write_text(json.dumps({"segments": [x.to_dict() for x in segments], "spans": spans, "seconds": seconds}))
    return segments, spans, seconds


def transcribed(e, s, mode: str, cache: Path | None, prompt: dict | None = None) -> Heard:
    """The session as a job would transcribe it from `mode` audio: `mixed` (one track, each
    word's speaker from the voices), `platform` (one track, speakers from the platform's
    transcript) or `tracks` (one per participant). Whisper's output is cached by its recipe."""
    from workers.transcription.local import LocalWhisper
    from workers.transcription.speakers import attribute, merge_tracks
    from workers.transcription.voices import voice_frames
    source = "tracks" if mode == "tracks" else "words"
    voices = {role: espeak_voice(v) for role, v in {**DEFAULT_VOICES, **e.voices}.items()}
    recipe = json.dumps([source, voices, s.turns, prompt], sort_keys=True)
    key = hashlib.sha256(recipe.encode()).hexdigest()[:16]
    path = cache / f"{e.name}-{s.id}-{source}-{key}.json" if cache else None
    audio = {}

    def heard_by_whisper():
        audio["mixed"], tracks, spans = speak(e, s)
        whisper, kwargs = LocalWhisper(), dict(prompt or {})  # names= and topics=, as a job passes them
        started = time.perf_counter()
        if source == "tracks":
            segments = merge_tracks([(_labels(e)[role], whisper.transcribe(track, **kwargs).segments)
                                     for role, track in tracks.items()])
        else:
            segments = whisper.transcribe(audio["mixed"], per_word=True, **kwargs).segments
        return segments, spans, time.perf_counter() - started

    segments, spans, seconds = _cached(path, heard_by_whisper)
    if mode == "mixed":
        mixed = audio.get("mixed")
        if mixed is None:
            mixed = speak(e, s)[0]
        segments = attribute(segments, voices=voice_frames([mixed]), coach_name=e.coach, client_name=e.client)
    elif mode == "platform":
        segments = attribute(segments, platform=platform_cues(e, s, spans), coach_name=e.coach, client_name=e.client)
    return Heard(segments, spans, seconds)


# --- matching found items to labelled ones ---------------------------------------------------

def same_item(found: str, wanted: str) -> bool:
    """A found item is the labelled one when it has at least half of its content words."""
    want = content_words(wanted)
    return bool(want) and len(want & content_words(found)) >= max(1, len(want) / 2)


def near(timestamp: float | None, turn: int, spans, slack: int = 1) -> bool:
    """Whether a cited time lies in the labelled turn or a turn beside it."""
    if timestamp is None:
        return True
    lo = spans[max(0, turn - slack)][0] - 1.0
    hi = spans[min(len(spans) - 1, turn + slack)][1] + 1.0
    return lo <= timestamp <= hi


def pair(found: list, gold: list, text_of, time_of, spans) -> dict[int, int]:
    """found index -> gold index, each gold item taken at most once."""
    taken, out = set(), {}
    for i, item in enumerate(found):
        for j, g in enumerate(gold):
            if j not in taken and same_item(text_of(item), g["what"]) and near(time_of(item), g["turn"], spans):
                taken.add(j)
                out[i] = j
                break
    return out


class Tally:
    """Counts added up over sessions, printed as ratios."""

    def __init__(self):
        self.n = collections.Counter()

    def add(self, **counts):
        self.n.update(counts)

    def ratio(self, a: str, b: str) -> str:
        return f"{self.n[a] / self.n[b]:.2f}" if self.n[b] else "n/a"


def _role(who: str | None, e) -> str:
    who = (who or "").lower()
    if who in ("coach", e.coach.lower()) or (e.coach.split()[0].lower() == who):
        return "coach"
    return "client"


def is_withdrawn(c) -> bool:
    return bool(getattr(c, "withdrawn", False))


def score_summary(t: Tally, e, s, heard: Heard, client, show: bool) -> None:
    gold = s.gold
    spans = heard.spans
    shown = [c for c in client.commitments if not is_withdrawn(c)]
    hw_gold = gold["homework"]
    matched = pair(shown, gold["commitments"], lambda c: c.what, lambda c: c.source_timestamp, spans)
    # A commitment that only repeats labelled homework is neither right nor wrong here.
    repeats = {i for i, c in enumerate(shown) if i not in matched and any(
        same_item(c.what, h["what"]) and near(c.source_timestamp, h["turn"], spans, 3) for h in hw_gold)}
    retracted = [g for g in gold["retracted"] if any(
        same_item(c.what, g["what"]) and near(c.source_timestamp, g["turn"], spans) for c in shown)]
    small = [g for g in gold["small_talk"] if any(
        same_item(c.what, g["what"]) and near(c.source_timestamp, g["turn"], spans) for c in shown)]
    t.add(c_found=len(shown) - len(repeats), c_right=len(matched), c_gold=len(gold["commitments"]),
          retracted_kept=len(retracted), retracted=len(gold["retracted"]),
          small_kept=len(small), small=len(gold["small_talk"]),
          tentative_right=sum(bool(getattr(shown[i], "tentative", False)) == bool(gold["commitments"][j]["tentative"])
                              for i, j in matched.items()),
          owner_right=sum(_role(shown[i].who, e) == gold["commitments"][j]["owner"] for i, j in matched.items()))
    hw = pair(client.homework, hw_gold, lambda h: h.task, lambda h: h.source_timestamp, spans)
    t.add(h_found=len(client.homework), h_right=len(hw), h_gold=len(hw_gold))
    dec = pair(client.decisions, gold["decisions"], lambda d: d.text, lambda d: d.source_timestamp, spans)
    t.add(d_found=len(client.decisions), d_right=len(dec), d_gold=len(gold["decisions"]))

    def names_topic(text: str, g: dict) -> bool:
        keys = content_words(" ".join(g["keys"]))
        return len(keys & content_words(text)) >= max(1, len(keys) / 2)

    threads = [str(x) for x in client.open_threads]
    found_threads = sum(any(names_topic(x, g) for g in gold["open_threads"]) for x in threads)
    named = sum(any(names_topic(x, g) for x in threads) for g in gold["open_threads"])
    t.add(o_found=len(threads), o_right=found_threads, o_gold=len(gold["open_threads"]), o_named=named)
    if show:
        print(f"    {s.id}: commitments {[c.what for c in shown]}")
        print(f"      missed {[g['what'] for j, g in enumerate(gold['commitments']) if j not in matched.values()]}")
        print(f"      wrong {[c.what for i, c in enumerate(shown) if i not in matched and i not in repeats]}")
        print(f"      retracted kept {[g['what'] for g in retracted]}; small talk kept {[g['what'] for g in small]}")
        print(f"      homework {[h.task for h in client.homework]}; missed "
              f"{[g['what'] for j, g in enumerate(hw_gold) if j not in hw.values()]}")
        print(f"      decisions {[d.text for d in client.decisions]}; missed "
              f"{[g['what'] for j, g in enumerate(gold['decisions']) if j not in dec.values()]}")
        print(f"      threads {threads}; labelled {[g['topic'] for g in gold['open_threads']]}")
        print(f"      overview {client.overview!r}")


def gold_items(e) -> dict[str, dict]:
    """ref -> labelled item (commitment or homework), with where it was made."""
    items = {}
    for s in e.sessions:
        for kind in ("commitments", "homework"):
            for g in s.gold[kind]:
                items[f"{s.id}/{g['id']}"] = {**g, "session": s.id}
    return items


def tracked_ref(c, items: dict, spans_of: dict) -> str | None:
    """The labelled ref a tracked commitment is, if any."""
    for ref, g in items.items():
        if g["session"] == c.made_in.session_id and same_item(c.what, g["what"]) and \
                near(c.made_in.timestamp, g["turn"], spans_of[g["session"]], 3):
            return ref
    return None


def open_items(memory: ClientMemory):
    try:
        from workers.summaries.memory import briefing_items
    except ImportError:  # a revision from before the briefing had its own list (for comparison)
        return memory.open_commitments
    return briefing_items(memory)


def score_memory(t: Tally, e, s, memory: ClientMemory, items, spans_of, show: bool) -> None:
    by_ref = {}
    for c in memory.commitments:
        ref = tracked_ref(c, items, spans_of)
        if ref and ref not in by_ref:
            by_ref[ref] = c
    right = 0
    for p in s.gold["progress"]:
        c = by_ref.get(p["ref"])
        status = c.status if c else "missing"
        right += status == p["status"]
        if show and status != p["status"]:
            print(f"      progress {p['ref']} {items[p['ref']]['what']!r}: {status}, labelled {p['status']}")
    t.add(p_right=right, p_gold=len(s.gold["progress"]))
    listed = open_items(memory)
    refs = [tracked_ref(c, items, spans_of) for c in listed]
    wanted = set(s.gold["briefing_after"])
    good = {r for r in refs if r in wanted}
    exact = len(good) == len(wanted) and len(refs) == len(wanted) and None not in refs
    t.add(b_sessions=1, b_exact=int(exact), b_listed=len(refs), b_should=len(wanted), b_right=len(good))
    if show and not exact:
        print(f"      briefing lists {[c.what for c, r in zip(listed, refs) if r not in wanted]} wrongly; "
              f"misses {[items[r]['what'] for r in wanted - good]}")


# --- words, speakers, names ------------------------------------------------------------------

_ONES = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen " \
        "sixteen seventeen eighteen nineteen".split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def _number(n: int) -> str:
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    if n < 1000:
        return _ONES[n // 100] + " hundred" + ("" if n % 100 == 0 else " " + _number(n % 100))
    return str(n)


def words_of(text: str) -> list[str]:
    text = re.sub(r"\d+", lambda m: " " + _number(int(m.group())) + " ", text.lower())
    return re.findall(r"[a-z]+(?:'[a-z]+)?", text.replace("\u2019", "'"))


def align(ref: list[str], hyp: list[str]) -> tuple[int, list[tuple[int, int]]]:
    """Edit distance and the (ref index, hyp index) pairs aligned as equal or substituted."""
    if not ref or not hyp:
        return max(len(ref), len(hyp)), []
    out = jiwer.process_words(" ".join(ref), " ".join(hyp))
    pairs = [(chunk.ref_start_idx + k, chunk.hyp_start_idx + k)
             for chunk in out.alignments[0] if chunk.type in ("equal", "substitute")
             for k in range(chunk.ref_end_idx - chunk.ref_start_idx)]
    return out.substitutions + out.deletions + out.insertions, pairs


def score_words(t: Tally, e, s, heard: Heard) -> None:
    ref, ref_role = [], []
    for role, text in s.turns:
        w = words_of(text)
        ref += w
        ref_role += [role] * len(w)
    hyp, hyp_role = [], []
    for seg in heard.segments:
        w = words_of(seg.text)
        hyp += w
        hyp_role += [_role(seg.speaker, e)] * len(w)
    errors, pairs = align(ref, hyp)
    t.add(w_errors=errors, w_ref=len(ref), spk_right=sum(ref_role[i] == hyp_role[j] for i, j in pairs),
          audio_seconds=int(heard.spans[-1][1]), whisper_ms=int(heard.seconds * 1000))
    names = [n.lower() for n in s.gold["names"]] + [e.coach.split()[0].lower(), e.client.split()[0].lower()]
    ref_count = collections.Counter(w for w in ref if w in names)
    hyp_count = collections.Counter(w for w in hyp if w in names)
    t.add(names_said=sum(ref_count.values()), names_heard=sum(min(n, hyp_count[w]) for w, n in ref_count.items()))


# --- running -----------------------------------------------------------------------------------

def summarise(engine: str, segments, memory, e, session_id):
    if engine == "openai":
        from integrations.openai_api import make_client
        from workers.summaries.openai_engine import OpenAISummariser
        from workers.summaries.openai_engine import SummaryFormatError
        from workers.summaries.schema import ClientSummary
        client = make_client(base_url=os.environ.get("OPENAI_BASE_URL"), api_key=os.environ.get("OPENAI_API_KEY", "x"))
        try:
            return OpenAISummariser(client, os.environ.get("OPENAI_SUMMARY_MODEL", "gpt-4o-mini")).summarise(
                segments, memory, client_name=e.client, coach_name=e.coach)
        except SummaryFormatError as exc:
            # As a job would fail the session: nothing found, and said so.
            print(f"    {session_id}: no summary ({exc})", flush=True)
            empty = {f: [] for f in ClientSummary.model_fields if f not in ("overview", "engine", "basic")}
            return ClientSummary(overview="", engine="openai", **empty), None
    from workers.summaries.offline import summarise_offline
    return summarise_offline(segments, memory=memory, coach_labels=(e.coach, "Coach"),
                             session_id=session_id, people=(e.client, e.coach), client_name=e.client)


def run(split: str, mode: str, engine: str, cache: Path | None, show: bool, hotwords: bool = True,
        only: set[str] | None = None) -> Tally:
    t = Tally()
    for e in coaching_set.load(split):
        if only and e.name not in only:
            continue
        memory = ClientMemory()
        items = gold_items(e)
        spans_of = {}
        if show:
            print(f"  {e.name}")
        for s in e.sessions:
            # What a job gives Whisper: the two names, and the people and themes remembered.
            vocabulary = {"names": [e.coach, e.client, *memory.people],
                          "topics": [x.name for x in memory.recurring_themes()]} if hotwords else None
            heard = true_words(e, s) if mode == "text" else transcribed(e, s, mode, cache, vocabulary)
            spans_of[s.id] = heard.spans
            if mode != "text":
                score_words(t, e, s, heard)
            client, _ = summarise(engine, heard.segments, memory, e, s.id)
            score_summary(t, e, s, heard, client, show)
            memory = update_memory(memory, client, s.id, s.date, heard.segments)
            score_memory(t, e, s, memory, items, spans_of, show)
    return t


def report(split: str, mode: str, t: Tally) -> str:
    n = t.n
    lines = [f"{split} / {mode}:",
             f"  commitments precision {t.ratio('c_right', 'c_found')} recall {t.ratio('c_right', 'c_gold')} "
             f"({n['c_right']} right of {n['c_found']} found, {n['c_gold']} labelled); "
             f"tentative right {t.ratio('tentative_right', 'c_right')}, owner right {t.ratio('owner_right', 'c_right')}",
             f"  retracted kept {n['retracted_kept']} of {n['retracted']}; small talk kept {n['small_kept']} of {n['small']}",
             f"  homework precision {t.ratio('h_right', 'h_found')} recall {t.ratio('h_right', 'h_gold')}; "
             f"decisions precision {t.ratio('d_right', 'd_found')} recall {t.ratio('d_right', 'd_gold')}",
             f"  open threads naming their topic: precision {t.ratio('o_right', 'o_found')} "
             f"recall {t.ratio('o_named', 'o_gold')}",
             f"  memory progress {t.ratio('p_right', 'p_gold')} ({n['p_right']} of {n['p_gold']}); "
             f"briefing exact in {n['b_exact']} of {n['b_sessions']} sessions, "
             f"{n['b_right']} right of {n['b_listed']} listed, {n['b_should']} labelled"]
    if n["w_ref"]:
        lines.append(f"  word error rate {n['w_errors'] / n['w_ref']:.3f}; speakers right "
                     f"{n['spk_right'] / n['w_ref']:.3f} of the true words; names heard "
                     f"{n['names_heard']} of {n['names_said']}; Whisper real-time factor "
                     f"{n['whisper_ms'] / 1000 / max(1, n['audio_seconds']):.3f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--words", default="text", help="text, mixed, platform, tracks (comma-separated)")
    parser.add_argument("--split", default="tuning,heldout")
    parser.add_argument("--engine", default="offline", choices=("offline", "openai"))
    parser.add_argument("--cache", type=Path, help="keep the synthetic transcripts here between runs")
    parser.add_argument("--show", action="store_true", help="print what each session got wrong")
    parser.add_argument("--no-hotwords", action="store_true", help="transcribe without the names (to compare)")
    parser.add_argument("--only", help="these engagements only (file names without .json, comma-separated)")
    args = parser.parse_args()
    modes = args.words.split(",")
    if any(m != "text" for m in modes) and shutil.which("espeak-ng") is None:
        parser.error("audio needs espeak-ng (apt-get install espeak-ng)")
    if args.cache:
        args.cache.mkdir(parents=True, exist_ok=True)
    print(f"engine {args.engine}")
    for split in args.split.split(","):
        for mode in modes:
            print(report(split, mode, run(split, mode, args.engine, args.cache, args.show and split == "tuning",
                                          not args.no_hotwords, set(args.only.split(",")) if args.only else None)),
                  flush=True)


if __name__ == "__main__":
    main()
