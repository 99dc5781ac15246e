"""The whisper child: faster-whisper (CTranslate2) on one Whisper model directory."""
