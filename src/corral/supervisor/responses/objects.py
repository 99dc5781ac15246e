"""The Responses API's objects: a response, its output items, its usage, built from OpenAI's
chat objects and the request they answer (a response repeats the settings it ran with)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from corral.supervisor.responses.schemas import ResponsesRequest


def response_id(openai_id: str) -> str:
    return "resp_" + openai_id.removeprefix("chatcmpl-")


def message_item(rid: str, index: int, text: str, status: str) -> dict[str, Any]:
    return {
        "type": "message",
        "id": f"msg_{rid}_{index}",
        "status": status,
        "role": "assistant",
        "content": [] if status == "in_progress" else [output_text(text)],
    }


def output_text(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def call_item(
    rid: str, index: int, call_id: str, name: str, arguments: str, status: str
) -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": f"fc_{rid}_{index}",
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": status,
    }


def usage(openai_usage: dict[str, Any] | None) -> dict[str, Any] | None:
    if not openai_usage:
        return None
    return {
        "input_tokens": openai_usage["prompt_tokens"],
        "input_tokens_details": {
            "cached_tokens": (openai_usage.get("prompt_tokens_details") or {}).get(
                "cached_tokens", 0
            )
        },
        "output_tokens": openai_usage["completion_tokens"],
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": openai_usage["prompt_tokens"] + openai_usage["completion_tokens"],
    }


@dataclass(frozen=True)
class Echo:
    """What a response object repeats of its request."""

    body: ResponsesRequest

    def fields(self) -> dict[str, Any]:
        b = self.body
        fmt = b.text.format if b.text is not None and b.text.format is not None else None
        return {
            "instructions": b.instructions,
            "max_output_tokens": b.max_output_tokens,
            "temperature": b.temperature,
            "top_p": b.top_p,
            "tools": [t.model_dump(exclude_none=True) for t in b.tools or []],
            "tool_choice": (
                b.tool_choice.model_dump()
                if b.tool_choice is not None and not isinstance(b.tool_choice, str)
                else b.tool_choice or "auto"
            ),
            "parallel_tool_calls": b.parallel_tool_calls is not False,
            "text": {
                "format": fmt.model_dump(by_alias=True, exclude_none=True)
                if fmt is not None
                else {"type": "text"}
            },
            "metadata": b.metadata or {},
            "user": b.user,
            "store": False,
            "previous_response_id": None,
            "reasoning": {"effort": None, "summary": None},
            "truncation": "disabled",
            "service_tier": "default",
            "background": False,
        }

    def response(
        self,
        openai_id: str,
        created: int,
        model: str,
        *,
        output: list[dict[str, Any]],
        finish_reason: str | None,
        openai_usage: dict[str, Any] | None,
    ) -> dict[str, Any]:
        """The response; ``finish_reason`` None while it is still running."""
        status = "in_progress"
        incomplete = None
        if finish_reason == "length":
            status, incomplete = "incomplete", {"reason": "max_output_tokens"}
        elif finish_reason is not None:
            status = "completed"
        return {
            "id": response_id(openai_id),
            "object": "response",
            "created_at": created,
            "status": status,
            "error": None,
            "incomplete_details": incomplete,
            "model": model,
            "output": output,
            "usage": usage(openai_usage),
            **self.fields(),
        }

    def full(self, response: dict[str, Any]) -> dict[str, Any]:
        """The whole response, from OpenAI's chat completion."""
        choice = response["choices"][0]
        message = choice["message"]
        rid = response_id(response["id"]).removeprefix("resp_")
        output: list[dict[str, Any]] = []
        calls = message.get("tool_calls") or []
        if message.get("content") or not calls:
            status = "incomplete" if choice["finish_reason"] == "length" else "completed"
            output.append(message_item(rid, 0, message.get("content") or "", status))
        for call in calls:
            function = call["function"]
            output.append(
                call_item(
                    rid,
                    len(output),
                    call["id"],
                    function["name"],
                    function["arguments"],
                    "completed",
                )
            )
        return self.response(
            response["id"],
            response["created"],
            response["model"],
            output=output,
            finish_reason=choice["finish_reason"],
            openai_usage=response.get("usage"),
        )
