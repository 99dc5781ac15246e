"""OpenAI audio routes: transcriptions, translations, speech and voices."""
