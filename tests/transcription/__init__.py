"""Transcription engines: platform transcripts, local Whisper, OpenAI-compatible servers."""
