"""The consent text clients agree to, versioned; its SHA-256 is stored with every consent."""

import hashlib
import re

VERSION = "2026-11-v1"

TEXT = """\
Your coach uses holdspace to keep a record of your coaching sessions for you.

What is recorded: the audio and video of sessions held on Zoom or Google Meet, and the
transcript and written summary made from them.
Where it is stored: encrypted, under a key that belongs to you alone, on storage your coach's
practice controls. Transcription runs on holdspace's own servers unless your coach has chosen
a transcription service, which then hears the audio.
Who can see it: you and your coach. Your coach's private notes are theirs and are never shown
to anyone else.
How long it is kept: while you work with your coach and for the retention period your coach
has set after your last session (7 years unless they chose otherwise), then it is deleted.
Your right to withdraw: you can change or withdraw this consent at any time from the link in
your emails. Withdrawing deletes your recordings, transcripts and summaries, destroys your
key, and sends you a receipt of what was deleted.
"""

SHA256 = hashlib.sha256(TEXT.encode()).hexdigest()

# A line that starts a part of the text: "What is recorded: ..."
_PART = re.compile(r"^([A-Z][A-Za-z' ]{2,40}): (.*)$")


def paragraphs(text: str = TEXT) -> list[tuple[str | None, str]]:
    """The text as it reads, for a page: (heading or None, the paragraph's words), its lines
    joined again. The stored text (and so its hash) stays exactly as it was agreed to."""
    parts: list[list] = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            parts.append([None, ""])
            continue
        part = _PART.match(line)
        if part or not parts:
            parts.append([part.group(1), part.group(2)] if part else [None, line])
        else:
            parts[-1][1] = f"{parts[-1][1]} {line}".strip()
    return [(heading, words) for heading, words in parts if words]
