"""Reading vault objects: cutting a ciphertext stream into segments, and `VaultFile`, the
seekable decrypting file object that werkzeug, PyAV and anything else that reads files use."""

from __future__ import annotations

import io
import os
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from itertools import groupby

from vault.errors import IntegrityError
from vault.format import SegmentCipher, segment_ciphertext_length, segment_count, segment_offset

# At the default 64 KiB segment size this holds 256 KiB of plaintext per open file.
DEFAULT_CACHE_SEGMENTS = 4


def open_segments(chunks: Iterable[bytes], cipher: SegmentCipher, *, first: int, last: int,
                  size: int, segment_size: int) -> Iterator[tuple[int, bytes]]:
    """(index, plaintext) for segments `first`..`last`, cut out of `chunks`: the stored bytes
    from the start of segment `first` to the end of segment `last`, in pieces of any size."""
    count = segment_count(size, segment_size)
    chunks = iter(chunks)
    data, pos = b"", 0
    try:
        for index in range(first, last + 1):
            need = segment_ciphertext_length(index, size, segment_size)
            while len(data) - pos < need:
                chunk = next(chunks, None)
                if chunk is None:
                    raise IntegrityError(f"object ended inside segment {index}")
                # Only the unread tail (under one segment) is copied: a long run stays linear.
                data, pos = data[pos:] + chunk, 0
            yield index, cipher.open(index, data[pos:pos + need], index == count - 1)
            pos += need
        if len(data) > pos or next(chunks, None):
            raise IntegrityError("storage returned more bytes than the segments hold")
    finally:
        # A run abandoned part way (a failed segment) must still release its S3 response.
        close = getattr(chunks, "close", None)
        if close is not None:
            close()


def _runs(indexes: list[int]) -> Iterator[tuple[int, int]]:
    """(first, last) of each stretch of consecutive numbers in a sorted list."""
    for _, group in groupby(enumerate(indexes), lambda pair: pair[1] - pair[0]):
        stretch = [index for _, index in group]
        yield stretch[0], stretch[-1]


class VaultFile(io.RawIOBase):
    """One stored object as a read-only, seekable binary file of its plaintext.

    Made by `Vault.open_file`, which has already checked the header against the client's key
    and authenticated the final segment, so the size is proven before any byte is served.
    A read fetches only the segments it lacks, one ranged request per gap (a reader going
    straight on also gets the next few with it), and keeps the last few decrypted segments,
    never more than `cache_limit`; a segment that fails authentication raises IntegrityError
    from the first read that needs its bytes.

    The object is pinned to the version opened: if it is replaced on S3 while open, reads
    raise ObjectChanged rather than mix two versions. One file object is for one thread at a
    time (it may be handed from thread to thread); open one per reader for concurrent use.
    """

    def __init__(self, reader, *, object_key: str, client_id: str, content_type: str,
                 header_length: int, segment_size: int, size: int, cipher: SegmentCipher,
                 cache_limit: int = DEFAULT_CACHE_SEGMENTS):
        super().__init__()
        self._reader = reader
        self._cipher = cipher
        self._header_length = header_length
        self._segment_size = segment_size
        self._count = segment_count(size, segment_size)
        self._cache: OrderedDict[int, bytes] = OrderedDict()
        self._cache_limit = cache_limit
        self._pos = 0
        self._last_read = -1
        self.object_key = object_key
        self.client_id = client_id
        self.content_type = content_type
        self.size = size
        if cache_limit < 1:
            self.close()
            raise ValueError("a vault file needs room for at least one segment")

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"at {self._pos}"
        return f"<VaultFile {self.content_type}, {self.size} bytes, {state}>"

    def __reduce__(self):
        raise TypeError("a VaultFile holds a content key and cannot be pickled")

    # --- the file interface -------------------------------------------------------------------

    def readable(self) -> bool:
        self._check_open()
        return True

    def seekable(self) -> bool:
        self._check_open()
        return True

    def writable(self) -> bool:
        self._check_open()
        return False

    def write(self, data) -> int:
        raise io.UnsupportedOperation("a vault file is read-only")

    def truncate(self, size: int | None = None) -> int:
        raise io.UnsupportedOperation("a vault file is read-only")

    def tell(self) -> int:
        self._check_open()
        return self._pos

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        self._check_open()
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos, os.SEEK_END: self.size}.get(whence)
        if base is None:
            raise ValueError(f"invalid whence ({whence!r}, should be 0, 1 or 2)")
        position = base + offset.__index__()
        if position < 0:
            raise ValueError(f"negative seek position {position}")
        self._pos = position  # past the end is allowed, as for any file; reads there give b""
        return position

    def read(self, size: int | None = -1) -> bytes:
        self._check_open()
        left = max(0, self.size - self._pos)
        # Never allocate more than is left, whatever the caller asks for.
        want = left if size is None or size < 0 else min(size, left)
        if not want:
            return b""
        buffer = bytearray(want)
        got = self.readinto(buffer)
        del buffer[got:]
        return bytes(buffer)

    def readall(self) -> bytes:
        # One ranged request for the rest, not one per buffer-sized read.
        return self.read(-1)

    def readinto(self, buffer) -> int:
        self._check_open()
        out = memoryview(buffer).cast("B")
        start = self._pos
        end = min(self.size, start + len(out))
        if end <= start:
            return 0
        seg = self._segment_size
        first, last = start // seg, (end - 1) // seg
        sequential = first in (self._last_read, self._last_read + 1)
        # Copy what the cache holds before fetching the rest, which may evict it.
        missing = []
        for index in range(first, last + 1):
            plain = self._cache.get(index)
            if plain is None:
                missing.append(index)
            else:
                self._cache.move_to_end(index)
                self._copy(out, start, end, index, plain)
        for run_first, run_last in _runs(missing):
            fetch_last = self._read_ahead(run_first, run_last) if (
                sequential and run_last == last) else run_last
            self._fill(out, start, end, run_first, fetch_last, run_last)
        self._last_read = last
        self._pos = end
        return end - start

    def close(self) -> None:
        if not self.closed:
            try:
                self._reader.close()
            finally:
                self._reader = None
                self._cipher = None
                self._cache.clear()
        super().close()

    # --- segments -----------------------------------------------------------------------------

    @property
    def cached_segments(self) -> int:
        """How many decrypted segments this file holds now (at most `cache_limit`)."""
        return len(self._cache)

    @property
    def cache_limit(self) -> int:
        return self._cache_limit

    def authenticate_final_segment(self) -> None:
        """Decrypt the last segment now (and keep it: players read the index at the end), so
        an object cut short or extended is refused before any byte is served."""
        final = self._count - 1
        for index, plain in self._fetch(final, final):
            self._remember(index, plain)

    def _check_open(self) -> None:
        if self.closed:
            raise ValueError("I/O operation on closed vault file")

    def _read_ahead(self, first: int, last: int) -> int:
        """Where a run that a sequential reader (a download, a player) needs up to `last`
        should end: far enough to fill the cache, so it makes one request per few segments."""
        target = min(self._count - 1, first + self._cache_limit - 1)
        while last < target and last + 1 not in self._cache:
            last += 1
        return last

    def _fill(self, out: memoryview, start: int, end: int, first: int, last: int,
              needed: int) -> None:
        """Fetch segments `first`..`last`, keep them, and copy their part of [start, end)."""
        expected = first
        try:
            for index, plain in self._fetch(first, last):
                self._remember(index, plain)
                self._copy(out, start, end, index, plain)
                expected = index + 1
        except IntegrityError:
            # A segment only read ahead does not fail this read; the read that needs it will.
            if not needed < expected <= last:
                raise

    def _fetch(self, first: int, last: int) -> Iterator[tuple[int, bytes]]:
        seg, length = self._segment_size, self._header_length
        lo = segment_offset(first, length, seg)
        hi = segment_offset(last, length, seg) + segment_ciphertext_length(last, self.size, seg)
        reader = self._reader
        # A small object often arrived whole with this open's header probe. A head from the
        # vault's header cache is not used: only a request proves the object is still there.
        if hi <= len(reader.head) and not reader.cached:
            chunks = [reader.head[lo:hi]]
        else:
            chunks = reader.stream(lo, hi)
        return open_segments(chunks, self._cipher, first=first, last=last, size=self.size,
                             segment_size=seg)

    def _remember(self, index: int, plain: bytes) -> None:
        self._cache[index] = plain
        self._cache.move_to_end(index)
        while len(self._cache) > self._cache_limit:
            self._cache.popitem(last=False)

    def _copy(self, out: memoryview, start: int, end: int, index: int, plain: bytes) -> None:
        base = index * self._segment_size
        lo, hi = max(start, base), min(end, base + len(plain))
        if lo < hi:
            out[lo - start:hi - start] = plain[lo - base:hi - base]
