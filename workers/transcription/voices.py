"""Two voices told apart in one mixed recording, from the sound alone.

When there are no per-participant tracks and no platform transcript, only the audio can say
who spoke. Each 10 ms frame is described by mel-frequency cepstral coefficients (the shape
of the voice's spectrum, a few lines of numpy); the stretches of speech between pauses are
clustered into two voices; and a two-state Viterbi pass over the words lets the speaker
change only where a word's frames sound more like the other voice than a switching cost,
which is lower across a pause, where turns change. Words, not segments, get a speaker, so a
quick "mm, yes" inside the other's turn is heard as theirs.

No model is loaded or fetched. The features of an hour are about 15 MB (19 half-precision
cepstra and one energy value per 10 ms frame).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

import numpy as np

from workers.transcription import Segment
from workers.transcription.audio import SAMPLE_RATE

HOP = 160  # samples: 10 ms
WINDOW = 400  # samples: 25 ms
_FFT = 512
_MELS = 40
_CEPSTRA = 20  # c0 (loudness) is left out: it tells near from far, not one voice from another


def _mel_filters(rate: int = SAMPLE_RATE) -> np.ndarray:
    def mel(hz):
        return 2595.0 * np.log10(1.0 + hz / 700.0)

    def hz(m):
        return 700.0 * (10 ** (m / 2595.0) - 1.0)

    edges = hz(np.linspace(mel(60.0), mel(rate / 2 * 0.95), _MELS + 2))
    bins = np.fft.rfftfreq(_FFT, 1.0 / rate)
    filters = np.zeros((_MELS, len(bins)), np.float32)
    for i in range(_MELS):
        lo, mid, hi = edges[i], edges[i + 1], edges[i + 2]
        rising = (bins - lo) / (mid - lo)
        falling = (hi - bins) / (hi - mid)
        filters[i] = np.clip(np.minimum(rising, falling), 0.0, None)
    return filters


def _dct_matrix() -> np.ndarray:
    n = np.arange(_MELS)
    k = np.arange(1, _CEPSTRA)[:, None]
    return (np.cos(np.pi * k * (2 * n + 1) / (2 * _MELS)) * np.sqrt(2.0 / _MELS)).astype(np.float32)


@dataclasses.dataclass
class VoiceFrames:
    """Per 10 ms frame: cepstra (float16, `_CEPSTRA - 1` per frame) and log energy."""

    cepstra: np.ndarray
    energy: np.ndarray

    def span(self, start: float, end: float) -> slice:
        first = max(0, int(start * SAMPLE_RATE / HOP))
        return slice(first, max(first, int(end * SAMPLE_RATE / HOP)))


def voice_frames(blocks: Iterable[np.ndarray]) -> VoiceFrames:
    """The frames of a whole recording, from its 16 kHz blocks as they are decoded."""
    filters, dct, window = _mel_filters(), _dct_matrix(), np.hamming(WINDOW).astype(np.float32)
    cepstra, energy = [], []
    held = np.zeros(0, np.float32)
    for block in blocks:
        held = np.concatenate([held, np.asarray(block, np.float32)])
        count = (len(held) - WINDOW) // HOP + 1 if len(held) >= WINDOW else 0
        if count <= 0:
            continue
        index = np.arange(WINDOW)[None, :] + HOP * np.arange(count)[:, None]
        frames = held[index]
        frames = np.concatenate([frames[:, :1], frames[:, 1:] - 0.97 * frames[:, :-1]], axis=1) * window
        power = np.abs(np.fft.rfft(frames, _FFT)) ** 2
        energy.append(np.log(power.sum(axis=1) + 1e-10).astype(np.float32))
        cepstra.append((np.log(power @ filters.T + 1e-10) @ dct.T).astype(np.float16))
        held = held[count * HOP:]
    if not cepstra:
        return VoiceFrames(np.zeros((0, _CEPSTRA - 1), np.float16), np.zeros(0, np.float32))
    return VoiceFrames(np.concatenate(cepstra), np.concatenate(energy))


def _switch_cost(gap: float) -> float:
    """What changing speaker before a word costs, by the silence before it: turns change at
    pauses, rarely inside a run of speech."""
    return float(np.interp(gap, [0.1, 0.6], [6.0, 1.0]))


def _runs(words: Sequence[Segment], pause: float = 0.3) -> list[list[int]]:
    runs: list[list[int]] = []
    for i, word in enumerate(words):
        if runs and word.start - words[runs[-1][-1]].end < pause:
            runs[-1].append(i)
        else:
            runs.append([i])
    return runs


def _two_means(points: np.ndarray, weights: np.ndarray, rounds: int = 30) -> np.ndarray:
    """Weighted k-means with k = 2, the better of two starts: the halves either side of the
    weighted median along the main axis of variation (robust to a few odd stretches), and
    the heaviest point with the one farthest from it."""
    centre = np.average(points, axis=0, weights=weights)
    axis = np.linalg.svd((points - centre) * np.sqrt(weights)[:, None], full_matrices=False)[2][0]
    along = (points - centre) @ axis
    order = np.argsort(along)
    median = along[order[np.searchsorted(np.cumsum(weights[order]), weights.sum() / 2)]]
    halves = along > median
    starts = []
    if halves.any() and (~halves).any():
        starts.append(np.stack([np.average(points[~halves], axis=0, weights=weights[~halves]),
                                np.average(points[halves], axis=0, weights=weights[halves])]))
    first = points[int(np.argmax(weights))]
    starts.append(np.stack([first, points[int(np.argmax(((points - first) ** 2).sum(axis=1)))]]))
    best, best_cost = np.zeros(len(points), int), np.inf
    for centres in starts:
        labels = np.full(len(points), -1)
        for _ in range(rounds):
            distance = ((points[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2)
            new = distance.argmin(axis=1)
            if (new == labels).all():
                break
            labels = new
            for k in (0, 1):
                if (labels == k).any():
                    centres[k] = np.average(points[labels == k], axis=0, weights=weights[labels == k])
        cost = float((distance[np.arange(len(points)), labels] * weights).sum())
        if cost < best_cost:
            best, best_cost = labels, cost
    return best


def two_voices(words: Sequence[Segment], frames: VoiceFrames) -> list[Segment]:
    """`words` (one segment per word, in time order) labelled "Speaker 1" or "Speaker 2",
    marked guessed. One voice throughout when the audio does not split into two."""
    if not words:
        return []
    loud = frames.energy > np.percentile(frames.energy, 40) if len(frames.energy) else frames.energy
    mean, std = np.zeros(_CEPSTRA - 1), np.ones(_CEPSTRA - 1)
    if loud.any():
        voiced = frames.cepstra[loud].astype(np.float32)
        mean, std = voiced.mean(axis=0), voiced.std(axis=0) + 1e-3
    per_word = []
    for word in words:
        span = frames.span(word.start, word.end)
        chosen = frames.cepstra[span][loud[span]].astype(np.float32)
        per_word.append((chosen - mean) / std)

    runs = _runs(words)
    sums = np.array([np.concatenate([per_word[i] for i in run]).sum(axis=0)
                     if any(len(per_word[i]) for i in run) else np.zeros(_CEPSTRA - 1) for run in runs])
    counts = np.array([sum(len(per_word[i]) for i in run) for run in runs], float)
    heard = counts > 0
    labels = np.zeros(len(words), int)
    if heard.sum() >= 2:
        run_labels = np.zeros(len(runs), int)
        run_labels[heard] = _two_means(sums[heard] / counts[heard][:, None], counts[heard])
        for run, label in zip(runs, run_labels):
            labels[run] = label
        labels = _smooth(words, per_word, labels)
    return [dataclasses.replace(w, speaker=f"Speaker {label + 1}", speaker_guessed=True)
            for w, label in zip(words, labels)]


# How much better two voices explain the frames than one, per frame (nats, by the Bayesian
# information criterion with diagonal Gaussians). Two espeak-ng voices score 0.30 to 0.38, one
# voice split in two 0.02 to 0.035: a clustering always finds two groups, this says whether
# they are two people.
ONE_VOICE_GAIN = 0.1


def _split_gain(a: np.ndarray, b: np.ndarray) -> float:
    def fit(x):
        return -0.5 * len(x) * np.log(x.var(axis=0) + 1e-2).sum()

    both = np.concatenate([a, b])
    penalty = 0.5 * 2 * a.shape[1] * np.log(len(both))
    return float((fit(a) + fit(b) - fit(both) - penalty) / len(both))


def _smooth(words: Sequence[Segment], per_word: list[np.ndarray], labels: np.ndarray) -> np.ndarray:
    """Each word's voice by Viterbi over two diagonal Gaussians fitted to the clustered frames."""
    models, heard = [], []
    for k in (0, 1):
        own = [per_word[i] for i in np.flatnonzero(labels == k) if len(per_word[i])]
        if not own:
            return labels
        stacked = np.concatenate(own)
        if len(stacked) < 50:  # a voice heard for under half a second is not a second voice
            return np.zeros_like(labels)
        heard.append(stacked)
        models.append((stacked.mean(axis=0), stacked.var(axis=0) + 1e-2))
    if _split_gain(*heard) < ONE_VOICE_GAIN:
        return np.zeros_like(labels)
    scores = np.zeros((len(words), 2))
    for i, chosen in enumerate(per_word):
        if not len(chosen):
            continue
        for k, (mu, var) in enumerate(models):
            loglik = -0.5 * (((chosen - mu) ** 2) / var + np.log(var)).sum(axis=1)
            # Evidence per word is capped, so one long word cannot outvote its neighbours.
            scores[i, k] = loglik.mean() * min(len(chosen), 30)
    best = scores[0].copy()
    back = np.zeros((len(words), 2), int)
    for i in range(1, len(words)):
        cost = _switch_cost(words[i].start - words[i - 1].end) * 10.0
        stay, switch = best, best[::-1] - cost
        back[i] = np.where(stay >= switch, [0, 1], [1, 0])
        best = np.maximum(stay, switch) + scores[i]
    out = np.zeros(len(words), int)
    out[-1] = int(np.argmax(best))
    for i in range(len(words) - 1, 0, -1):
        out[i - 1] = back[i, out[i]]
    return out
