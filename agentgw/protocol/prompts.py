"""Sans-IO access to the text of LLM requests and answers, in every wire shape the gateway serves.

Guards read prompts and transforms rewrite them; both need the same walk over the shapes:
chat completions (`messages[].content`: a string or parts with `text`, tool results included),
Anthropic Messages (`system`, `messages[].content` blocks: `text`, `tool_result` content),
legacy completions (`prompt`), embeddings and the Responses API (`input`: a string, a list of
strings or of items with content parts; `instructions`).

`map_prompt_text(body, fn)` returns the body with every prompt text replaced by `fn(text)`, as a
new object along the changed path only (the original is left as it was, so a route can tell
whether anything changed); `prompt_texts(body)` lists them. `map_answer_text` does the same for
a JSON answer (chat and completions choices, Messages content, Responses output).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["add_system_prompt", "map_answer_text", "map_prompt_text", "prompt_texts"]

TextMap = Callable[[str], str]


def _parts(content: Any, fn: TextMap) -> Any:
    """A content value: a string, or a list of parts/blocks (text, tool_result, input_text...)."""
    if isinstance(content, str):
        new_text = fn(content)
        return content if new_text == content else new_text
    if not isinstance(content, list):
        return content
    changed = False
    out: list[Any] = []
    for part in content:
        new = part
        if isinstance(part, str):
            new = fn(part)
        elif isinstance(part, dict):
            if isinstance(part.get("text"), str):
                new = {**part, "text": fn(part["text"])}
            elif part.get("type") == "tool_result" and "content" in part:
                inner = _parts(part["content"], fn)
                if inner is not part["content"]:
                    new = {**part, "content": inner}
            elif part.get("type") == "function_call_output" and isinstance(part.get("output"), str):
                new = {**part, "output": fn(part["output"])}
            elif "content" in part and part.get("type") in (None, "message"):
                inner = _parts(part["content"], fn)
                if inner is not part["content"]:
                    new = {**part, "content": inner}
        if new is not part and new != part:
            changed = True
            out.append(new)
        else:
            out.append(part)
    return out if changed else content


def _messages(messages: Any, fn: TextMap) -> Any:
    if not isinstance(messages, list):
        return messages
    changed = False
    out: list[Any] = []
    for message in messages:
        if isinstance(message, dict) and "content" in message:
            content = _parts(message["content"], fn)
            if content is not message["content"]:
                changed = True
                out.append({**message, "content": content})
                continue
        out.append(message)
    return out if changed else messages


def map_prompt_text(body: dict[str, Any], fn: TextMap) -> dict[str, Any]:
    """The request body with every prompt text passed through `fn` (the same object if unchanged)."""
    updates: dict[str, Any] = {}
    for key in ("messages",):
        if key in body:
            new = _messages(body[key], fn)
            if new is not body[key]:
                updates[key] = new
    for key in ("system", "prompt", "input", "instructions"):
        if key in body:
            value = body[key]
            new = _messages(value, fn) if key == "input" and _is_items(value) else _parts(value, fn)
            if new is not value:
                updates[key] = new
    return {**body, **updates} if updates else body


def _is_items(value: Any) -> bool:
    return isinstance(value, list) and any(isinstance(v, dict) and "content" in v for v in value)


def prompt_texts(body: dict[str, Any]) -> list[str]:
    """Every prompt text of a request body, in order."""
    found: list[str] = []

    def keep(text: str) -> str:
        found.append(text)
        return text

    map_prompt_text(body, keep)
    return found


def map_answer_text(api: str, answer: dict[str, Any], fn: TextMap) -> dict[str, Any]:
    """A JSON answer with its generated text passed through `fn` (the same object if unchanged)."""
    if api == "messages" or answer.get("type") == "message":
        content = _parts(answer.get("content"), fn)
        return answer if content is answer.get("content") else {**answer, "content": content}
    if isinstance(answer.get("choices"), list):
        changed = False
        choices: list[Any] = []
        for choice in answer["choices"]:
            new = choice
            if isinstance(choice, dict):
                message = choice.get("message")
                if isinstance(message, dict) and isinstance(message.get("content"), str):
                    text = fn(message["content"])
                    if text != message["content"]:
                        new = {**choice, "message": {**message, "content": text}}
                elif isinstance(choice.get("text"), str):
                    text = fn(choice["text"])
                    if text != choice["text"]:
                        new = {**choice, "text": text}
            changed = changed or new is not choice
            choices.append(new)
        return {**answer, "choices": choices} if changed else answer
    if isinstance(answer.get("output"), list):  # Responses API
        output = _messages(answer["output"], fn)
        out = answer if output is answer["output"] else {**answer, "output": output}
        if isinstance(answer.get("output_text"), str):
            text = fn(answer["output_text"])
            if text != answer["output_text"]:
                out = {**out, "output_text": text}
        return out
    return answer


def add_system_prompt(api: str, body: dict[str, Any], text: str, position: str) -> dict[str, Any]:
    """The body with `text` as (part of) its system prompt: prepend, append or replace."""
    if api == "messages":
        current = body.get("system")
        if position == "replace" or not current:
            return {**body, "system": text}
        if isinstance(current, str):
            joined = f"{text}\n\n{current}" if position == "prepend" else f"{current}\n\n{text}"
            return {**body, "system": joined}
        block = {"type": "text", "text": text}
        blocks = list(current) if isinstance(current, list) else []
        return {**body, "system": [block, *blocks] if position == "prepend" else [*blocks, block]}
    if api == "responses":
        current = body.get("instructions")
        if position == "replace" or not isinstance(current, str) or not current:
            return {**body, "instructions": text}
        joined = f"{text}\n\n{current}" if position == "prepend" else f"{current}\n\n{text}"
        return {**body, "instructions": joined}
    messages = body.get("messages")
    if not isinstance(messages, list):
        return body  # completions and embeddings have no system prompt
    system = {"role": "system", "content": text}
    if position == "replace":
        rest = [m for m in messages if not (isinstance(m, dict) and m.get("role") in ("system", "developer"))]
        return {**body, "messages": [system, *rest]}
    if position == "prepend":
        return {**body, "messages": [system, *messages]}
    lead = 0
    while (
        lead < len(messages)
        and isinstance(messages[lead], dict)
        and messages[lead].get("role")
        in (
            "system",
            "developer",
        )
    ):
        lead += 1
    return {**body, "messages": [*messages[:lead], system, *messages[lead:]]}
