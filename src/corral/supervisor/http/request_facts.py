"""What a handler learns about its request, for the analytics row and the metrics."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class RequestFacts:
    client_ip: str | None
    model: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    ttft_ms: float | None = None
    tokens_per_second: float | None = None
    conversation_id: str | None = None
    audio_seconds_in: float | None = None  # transcribed
    audio_seconds_out: float | None = None  # synthesised
    client_closed: bool = False  # the client left before the response was complete

    def record_generation(
        self,
        model: str,
        prompt_tokens: int,
        completion_tokens: int,
        ttft: float | None,
        decode_seconds: float | None,
    ) -> None:
        self.model = model
        self.prompt_tokens = prompt_tokens
        self.completion_tokens = completion_tokens
        self.ttft_ms = None if ttft is None else round(ttft * 1000, 3)
        if decode_seconds and completion_tokens > 1:
            self.tokens_per_second = round((completion_tokens - 1) / decode_seconds, 3)
