"""`Vault.open_file`: the seekable decrypting file object, on moto's S3 server and on the
local-directory backend: exact bytes at every position, refusal at open of an object cut
short or extended, a bounded segment cache, and use by io.BufferedReader and PyAV."""

from __future__ import annotations

import io
import os
import pickle
import random
from concurrent.futures import ThreadPoolExecutor

import av
import numpy as np
import pytest

from vault import IntegrityError, ObjectErased, ObjectNotFound
from vault.format import TAG_SIZE

SEGMENT = 1000  # small and not a power of two, so boundaries fall at awkward offsets
CLIENT = "client-7"
OTHER = "client-8"


@pytest.fixture
def vault(storage):
    return storage.new_vault(segment_size=SEGMENT)


def plaintext(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def store(vault, data: bytes, name: str = "sessions/s1/audio.m4a", client: str = CLIENT,
          content_type: str = "audio/mp4"):
    vault.ensure_client_key(client)
    return vault.put_stream(client, name, data, content_type)


@pytest.mark.parametrize("size", [0, 1, SEGMENT - 1, SEGMENT, SEGMENT + 1, 5 * SEGMENT + 7])
def test_random_seeks_and_reads_give_the_plaintext(vault, size):
    data = plaintext(size, seed=size)
    stored = store(vault, data)
    oracle = io.BytesIO(data)
    rng = random.Random(size)
    with vault.open_file(stored.key) as media:
        assert media.size == size and media.content_type == "audio/mp4"
        assert media.readable() and media.seekable() and not media.writable()
        assert media.seek(0, os.SEEK_END) == size and media.tell() == size
        assert media.read() == b"" and media.read(10) == b""
        oracle.seek(0, os.SEEK_END)
        for _ in range(300):
            whence = rng.choice((os.SEEK_SET, os.SEEK_CUR, os.SEEK_END))
            offset = {os.SEEK_SET: rng.randint(0, size + 3),
                      os.SEEK_CUR: rng.randint(-oracle.tell(), 2 * SEGMENT),
                      os.SEEK_END: rng.randint(-size, 2)}[whence]
            assert media.seek(offset, whence) == oracle.seek(offset, whence)
            n = rng.choice((0, 1, 7, SEGMENT - 1, SEGMENT, SEGMENT + 1, 3 * SEGMENT, -1))
            if rng.random() < 0.3 and n > 0:
                buffer, expected = bytearray(n), bytearray(n)
                assert media.readinto(memoryview(buffer)) == oracle.readinto(expected)
                assert buffer == expected
            else:
                assert media.read(n) == oracle.read(n)
            assert media.tell() == oracle.tell()
            assert media.cached_segments <= media.cache_limit
        media.seek(0)
        assert media.read() == data
        media.seek(size + 50)
        assert media.read(5) == b"" and media.readinto(bytearray(5)) == 0
        with pytest.raises(ValueError):
            media.seek(-1)
        with pytest.raises(ValueError):
            media.seek(0, 3)
        with pytest.raises(io.UnsupportedOperation):
            media.write(b"x")


def test_a_huge_read_request_allocates_only_what_is_left(vault):
    stored = store(vault, plaintext(3 * SEGMENT))
    with vault.open_file(stored.key) as media:
        media.seek(2 * SEGMENT)
        assert media.read(10**15) == plaintext(3 * SEGMENT)[2 * SEGMENT:]


def test_buffered_reader_over_it(vault):
    data = plaintext(7 * SEGMENT + 123, seed=1)
    stored = store(vault, data)
    oracle = io.BytesIO(data)
    rng = random.Random(1)
    with io.BufferedReader(vault.open_file(stored.key), buffer_size=SEGMENT // 3) as buffered:
        for _ in range(200):
            position = rng.randint(0, len(data))
            assert buffered.seek(position) == oracle.seek(position)
            n = rng.randint(0, 4 * SEGMENT)
            assert buffered.read(n) == oracle.read(n)
            assert buffered.peek(1)[:1] == oracle.getvalue()[oracle.tell():oracle.tell() + 1]
        buffered.seek(0)
        assert buffered.read() == data
        buffered.seek(-5, os.SEEK_END)
        assert buffered.read() == data[-5:]


def test_cache_never_holds_more_than_its_limit(vault):
    data = plaintext(40 * SEGMENT, seed=2)
    stored = store(vault, data)
    rng = random.Random(2)
    with vault.open_file(stored.key, cache_segments=2) as media:
        assert media.cache_limit == 2 and media.cached_segments == 1  # the final segment
        for _ in range(500):
            start, n = rng.randint(0, len(data) - 1), rng.randint(1, 3 * SEGMENT)
            media.seek(start)
            assert media.read(n) == data[start:start + n]
            assert media.cached_segments <= 2
        media.seek(0)
        while media.read(8192):
            assert media.cached_segments <= 2
    with pytest.raises(ValueError):
        vault.open_file(stored.key, cache_segments=0)


def test_sequential_reads_make_few_requests_and_random_ones_fetch_only_their_segments(
        storage, vault):
    count = 64
    data = plaintext(count * SEGMENT, seed=3)
    stored = store(vault, data)
    with vault.open_file(stored.key) as media:
        storage.reset_fetched()
        chunks = []
        while chunk := media.read(SEGMENT // 4):
            chunks.append(chunk)
        assert b"".join(chunks) == data
        # One request per cache-full of segments, not one per read (nor per segment).
        assert len(storage.fetched) <= count // media.cache_limit + 1
        assert sum(b - a for _, a, b in storage.fetched) <= len(data) + count * TAG_SIZE
        storage.reset_fetched()
        media.seek(10 * SEGMENT + 5)
        assert media.read(SEGMENT) == data[10 * SEGMENT + 5:11 * SEGMENT + 5]
        ((_, start, end),) = storage.fetched  # segments 10 and 11, in one request
        assert end - start == 2 * (SEGMENT + TAG_SIZE)


def test_whole_read_is_one_request(storage, vault):
    data = plaintext(30 * SEGMENT + 1, seed=4)
    stored = store(vault, data)
    with vault.open_file(stored.key) as media:
        storage.reset_fetched()
        assert media.read() == data
        assert len(storage.fetched) == 1


@pytest.mark.parametrize("cut", ["final_segment", "inside_final", "one_byte", "appended",
                                 "header_only"])
def test_truncated_or_extended_objects_are_refused_at_open(storage, vault, cut):
    data = plaintext(4 * SEGMENT + 10, seed=5)
    stored = store(vault, data)
    with vault.open_file(stored.key) as media:  # cache the header, as a player's reads do
        assert media.read(5) == data[:5]
    raw = storage.raw.get(stored.key)
    header = len(raw) - len(data) - 5 * TAG_SIZE
    storage.raw.put(stored.key, {
        "final_segment": raw[:-(10 + TAG_SIZE)],  # cut at a segment boundary
        "inside_final": raw[:-5],
        "one_byte": raw[:-1],
        "appended": raw + b"\0" * (SEGMENT + TAG_SIZE),
        "header_only": raw[:header],
    }[cut])
    storage.reset_fetched()
    with pytest.raises(IntegrityError):
        vault.open_file(stored.key)


def test_a_flipped_byte_fails_the_read_that_reaches_it(storage, vault):
    data = plaintext(6 * SEGMENT, seed=6)
    stored = store(vault, data)
    raw = bytearray(storage.raw.get(stored.key))
    header = len(raw) - len(data) - 6 * TAG_SIZE
    raw[header + 3 * (SEGMENT + TAG_SIZE) + 17] ^= 0x01  # inside segment 3
    storage.raw.put(stored.key, bytes(raw))
    with vault.open_file(stored.key) as media:  # the final segment is intact: open succeeds
        assert media.read(3 * SEGMENT) == data[:3 * SEGMENT]
        with pytest.raises(IntegrityError):
            media.read(10)
        media.seek(4 * SEGMENT)
        assert media.read() == data[4 * SEGMENT:]  # other segments still read
        media.seek(3 * SEGMENT - 10)
        with pytest.raises(IntegrityError):
            media.read(20)  # a read that only starts before the bad segment fails too
    with vault.open_file(stored.key) as media, pytest.raises(IntegrityError):
        media.read()


def test_a_flipped_header_byte_is_refused_at_open(storage, vault):
    stored = store(vault, plaintext(2 * SEGMENT))
    raw = bytearray(storage.raw.get(stored.key))
    raw[len(raw) - 2 * (SEGMENT + TAG_SIZE) - 1] ^= 0x20  # the content type's last byte
    storage.raw.put(stored.key, bytes(raw))
    with pytest.raises(IntegrityError):
        vault.open_file(stored.key)


def test_missing_erased_and_foreign_objects(storage, vault):
    with pytest.raises(ObjectNotFound):
        vault.open_file(f"clients/{CLIENT}/objects/none.m4a")
    mine = store(vault, plaintext(100))
    theirs = store(vault, plaintext(100), client=OTHER)
    # Client 8's object copied under client 7's name: the header names client 8.
    storage.raw.put(mine.key, storage.raw.get(theirs.key))
    with pytest.raises(IntegrityError):
        vault.open_file(mine.key)
    vault.shred_client_key(OTHER)
    with pytest.raises(ObjectErased):
        vault.open_file(theirs.key)
    with pytest.raises(ValueError):
        vault.open_file("keys/client-7")


def test_a_new_key_for_the_client_does_not_open_old_objects(storage, vault):
    stored = store(vault, plaintext(100))
    old = storage.raw.get(stored.key)
    vault.shred_client_key(CLIENT)
    store(vault, plaintext(10), name="other.bin")  # a fresh key, after consent was given again
    storage.raw.put(stored.key, old)
    with pytest.raises(IntegrityError):
        vault.open_file(stored.key)


def test_close_releases_the_reader_and_the_plaintext(storage, vault):
    stored = store(vault, plaintext(3 * SEGMENT))
    descriptors = len(os.listdir("/proc/self/fd"))
    media = vault.open_file(stored.key)
    media.read(SEGMENT)
    media.close()
    media.close()  # twice is fine
    assert media.closed and media.cached_segments == 0
    if storage.kind == "file":  # the object's file descriptor is closed
        assert len(os.listdir("/proc/self/fd")) == descriptors
    for call in (media.read, media.tell, lambda: media.seek(0), media.readable):
        with pytest.raises(ValueError):
            call()


def test_repr_and_pickling_reveal_nothing(vault):
    stored = store(vault, plaintext(10))
    with vault.open_file(stored.key) as media:
        text = repr(media)
        assert "audio/mp4" in text and "10 bytes" in text
        assert "objects/" not in text and CLIENT not in text and not hasattr(media, "name")
        with pytest.raises(TypeError):
            pickle.dumps(media)


def test_one_file_per_thread(vault):
    data = plaintext(20 * SEGMENT, seed=7)
    stored = store(vault, data)

    def reader(seed: int) -> bool:
        rng = random.Random(seed)
        with vault.open_file(stored.key) as media:
            for _ in range(50):
                start = rng.randint(0, len(data))
                media.seek(start)
                if media.read(1500) != data[start:start + 1500]:
                    return False
        return True

    with ThreadPoolExecutor(4) as pool:
        assert all(pool.map(reader, range(8)))


# --- PyAV ---------------------------------------------------------------------------------------

RATE = 44100
SECONDS = 3


def sine_tone_m4a() -> bytes:
    """A few seconds of 440 Hz as AAC in MP4; PyAV's muxer puts the moov index at the end."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as out:
        stream = out.add_stream("aac", rate=RATE, layout="mono")
        t = np.arange(SECONDS * RATE) / RATE
        samples = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        for i in range(0, len(samples), 1024):
            frame = av.AudioFrame.from_ndarray(samples[None, i:i + 1024], format="fltp",
                                               layout="mono")
            frame.sample_rate, frame.pts = RATE, i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buffer.getvalue()


def test_pyav_decodes_an_m4a_with_its_index_at_the_end(storage):
    data = sine_tone_m4a()
    assert data.rfind(b"moov") > data.find(b"mdat"), "the index must come last for this test"
    vault = storage.new_vault(segment_size=4096)  # many segments, so PyAV seeks across them
    stored = store(vault, data)
    media = vault.open_file(stored.key)
    with av.open(media) as container:
        assert abs(container.duration / av.time_base - SECONDS) < 0.05
        decoded = sum(frame.samples for frame in container.decode(audio=0))
        assert container.streams.audio[0].sample_rate == RATE
    # AAC adds up to two frames of priming and padding.
    assert SECONDS * RATE <= decoded <= SECONDS * RATE + 2048
    assert media.cached_segments <= media.cache_limit
    media.close()
