"""The consent text clients agree to, versioned; its SHA-256 is stored with every consent."""

import hashlib

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
