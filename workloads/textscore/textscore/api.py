"""The /v1/score request and response bodies, and every client error with its message.

Validation happens here, before either build's hot path runs, so both builds refuse bad input
with the same status and the same words, and the native code only ever sees valid text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from textscore import spec


@dataclass(frozen=True)
class ApiError(Exception):
    status: int
    error: str
    message: str

    def body(self) -> bytes:
        return json.dumps({"error": self.error, "message": self.message}).encode()


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    names = {dict: "object", list: "array", str: "string", int: "number", float: "number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def parse_score_request(body: bytes) -> list[str]:
    """The texts of a /v1/score body, or ApiError (400 unreadable JSON, 422 wrong shape)."""
    texts = _texts_field(_decode(body))
    for i, text in enumerate(texts):
        _check_text(i, text)
    return texts


def _decode(body: bytes) -> Any:
    """The body's JSON document, or a 400 that says why it could not be read."""
    try:
        return json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise ApiError(400, "invalid_json", "the body is not valid UTF-8") from None
    except json.JSONDecodeError as exc:
        message = f"the body is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        raise ApiError(400, "invalid_json", message) from None
    except RecursionError:
        raise ApiError(400, "invalid_json", "the body nests too deeply") from None


def _texts_field(doc: Any) -> list[Any]:
    """The document's "texts" array, checked for shape and count (not yet its items)."""
    if not isinstance(doc, dict):
        raise ApiError(
            422, "invalid_request", f'the body must be a JSON object with "texts", not {_json_type(doc)}'
        )
    if "texts" not in doc:
        raise ApiError(422, "invalid_request", 'the body has no "texts" field')
    texts = doc["texts"]
    if not isinstance(texts, list):
        raise ApiError(
            422, "invalid_request", f'"texts" must be an array of strings, not {_json_type(texts)}'
        )
    if not texts:
        raise ApiError(422, "invalid_request", f'"texts" is empty: send 1 to {spec.MAX_TEXTS} texts')
    if len(texts) > spec.MAX_TEXTS:
        raise ApiError(
            422, "invalid_request", f'"texts" has {len(texts)} items: send 1 to {spec.MAX_TEXTS} texts'
        )
    return texts


def _check_text(i: int, text: Any) -> None:
    """Refuse item ``i`` unless it is Unicode text within the length limit."""
    if not isinstance(text, str):
        raise ApiError(422, "invalid_request", f'"texts[{i}]" must be a string, not {_json_type(text)}')
    if len(text) > spec.MAX_TEXT_CHARS:
        raise ApiError(
            422,
            "invalid_request",
            f'"texts[{i}]" has {len(text)} characters: the limit is {spec.MAX_TEXT_CHARS}',
        )
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # JSON can spell lone surrogates (\ud800) that no UTF-8 text (nor Rust str) can hold.
        raise ApiError(
            422, "invalid_request", f'"texts[{i}]" contains a lone surrogate escape (not Unicode text)'
        ) from None


def score_response(scores: list[float]) -> bytes:
    return json.dumps({"model": spec.MODEL, "scores": scores}).encode()
