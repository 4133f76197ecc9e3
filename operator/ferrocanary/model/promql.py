"""Checks a PromQL template of ``spec.analysis.metrics`` before the operator ever runs it.

A template is PromQL with placeholders (``{{namespace}}``, ``{{deployment}}``, ...) that the
operator fills in per arm. Three things are refused, each with an error naming the field:

- an unknown placeholder (a typo would otherwise reach Prometheus as text);
- text that is not PromQL: an unclosed string, unbalanced brackets, a label matcher that is not
  ``name op "value"``, a character PromQL has no use for. This is a lexical and bracket-structure
  check, not Prometheus's parser (the operator does not ship one); ``ferrocanary queries`` prints
  the resolved queries so that ``promtool`` can check the rest;
- a vector selector that escapes the arm: every ``{...}`` must narrow to the canary's namespace
  (a namespace label matched ``="{{namespace}}"``, or ``{{selector}}``/``{{podSelector}}``, which
  carry it) and to this arm (a matcher whose value uses ``{{deployment}}``, ``{{service}}``,
  ``{{pods}}``, ``{{arm}}`` or one of the two selectors); a bare metric name without braces selects
  every namespace and is refused too. Otherwise a tenant reads another namespace's series, or both
  arms read the same series and every ratio is 1.
"""

from __future__ import annotations

import re

#: Placeholders a template may use; ``range`` only where the signal is a ``..._over_time`` gauge.
PLACEHOLDERS: tuple[str, ...] = (
    "namespace",
    "deployment",
    "service",
    "pods",
    "arm",
    "selector",
    "podSelector",
    "range",
)
#: Labels that carry a series' namespace as the systems the presets read name it.
NAMESPACE_LABELS: frozenset[str] = frozenset(
    {
        "namespace",
        "exported_namespace",
        "destination_workload_namespace",
        "destination_service_namespace",
        "source_workload_namespace",
    }
)
_ARM_PLACEHOLDERS = ("deployment", "service", "pods", "arm")

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<placeholder>\{\{\s*[A-Za-z_][A-Za-z0-9_]*\s*\}\})
  | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|`[^`]*`)
  | (?P<duration>(?:[0-9]+(?:ms|[smhdwy]))+)
  | (?P<number>(?:0x[0-9a-fA-F]+|[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?|[Ii]nf|NaN)\b)
  | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<op>==|!=|>=|<=|=~|!~|[-+*/%^<>=,@:])
  | (?P<open>[({\[])
  | (?P<close>[)}\]])
    """,
    re.VERBOSE,
)
_CLOSING = {"(": ")", "{": "}", "[": "]"}
# One matcher inside {...}: a label (or a placeholder standing for matchers), an operator, a value.
_MATCHER = re.compile(
    r'\s*(?:(?P<label>[A-Za-z_][A-Za-z0-9_]*)\s*(?P<op>=~|!~|!=|=)\s*(?P<value>"(?:[^"\\\n]|\\.)*")'
    r"|(?P<whole>\{\{\s*(?:selector|podSelector)\s*\}\}))\s*"
)


def placeholders(template: str) -> set[str]:
    """The placeholder names a template uses."""
    return {m.group(1) for m in _PLACEHOLDER.finditer(template)}


def check(template: str, field: str, *, allowed: tuple[str, ...] = PLACEHOLDERS) -> str:
    """``template`` if it passes the three checks; ValueError naming ``field`` otherwise."""
    if not isinstance(template, str) or not template.strip():
        raise ValueError(f"{field}: must be a PromQL template (a non-empty string)")
    if len(template) > 4096:
        raise ValueError(f"{field}: at most 4096 characters, got {len(template)}")
    unknown = sorted(placeholders(template) - set(allowed))
    if unknown:
        raise ValueError(
            f"{field}: unknown placeholder {{{{{unknown[0]}}}}}; known: "
            + ", ".join(f"{{{{{p}}}}}" for p in allowed)
        )
    for selector in _selectors(template, field):
        _check_narrowed(selector, field)
    return template


def _tokens(template: str, field: str) -> list[tuple[str, str, int]]:
    tokens: list[tuple[str, str, int]] = []
    pos = 0
    while pos < len(template):
        match = _TOKEN.match(template, pos)
        if match is None:
            raise ValueError(f"{field}: not PromQL: unexpected {template[pos]!r} at character {pos + 1}")
        kind = match.lastgroup or ""
        if kind != "space":
            tokens.append((kind, match.group(), pos))
        pos = match.end()
    return tokens


def _selectors(template: str, field: str) -> list[str]:
    """The text inside each ``{...}`` of a vector selector; checks brackets and bare metric names."""
    tokens = _tokens(template, field)
    stack: list[tuple[str, int]] = []
    found: list[str] = []
    for index, (kind, text, pos) in enumerate(tokens):
        if kind == "open":
            stack.append((text, pos))
            if text == "{":
                found.append(_matchers_of(template, pos, field))
        elif kind == "close":
            if not stack or _CLOSING[stack[-1][0]] != text:
                raise ValueError(f"{field}: not PromQL: unbalanced {text!r} at character {pos + 1}")
            stack.pop()
        elif kind == "ident" and not (stack and stack[-1][0] == "{"):
            _check_identifier(tokens, index, stack, field)
    if stack:
        raise ValueError(
            f"{field}: not PromQL: {stack[-1][0]!r} at character {stack[-1][1] + 1} is never closed"
        )
    return found


# Words that are not metric names: PromQL keywords and aggregation modifiers.
_KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset", "and", "or", "unless"}
)


def _check_identifier(
    tokens: list[tuple[str, str, int]], index: int, stack: list[tuple[str, int]], field: str
) -> None:
    """A bare metric name (not a function, keyword or label list) has no namespace matcher at all."""
    text, pos = tokens[index][1], tokens[index][2]
    following = tokens[index + 1][1] if index + 1 < len(tokens) else ""
    preceding = tokens[index - 1][1] if index > 0 else ""
    in_label_list = bool(stack) and stack[-1][0] == "(" and _label_list_opened(tokens, stack[-1][1])
    aggregation = following.lower() in ("by", "without")  # sum by (le) (...)
    if (
        text.lower() in _KEYWORDS
        or following in ("(", "{")
        or aggregation
        or in_label_list
        or preceding == "@"
    ):
        return
    raise ValueError(
        f"{field}: metric {text} at character {pos + 1} has no label matchers: it would read every "
        'namespace; write it with {namespace="{{namespace}}",...} or {{{selector}}}'
    )


def _label_list_opened(tokens: list[tuple[str, str, int]], open_pos: int) -> bool:
    """Whether the ``(`` at ``open_pos`` follows ``by``/``without``/``on``/... (a list of label names)."""
    for i, (_, _text, pos) in enumerate(tokens):
        if pos == open_pos:
            return i > 0 and tokens[i - 1][1].lower() in _KEYWORDS
    return False


def _matchers_of(template: str, open_pos: int, field: str) -> str:
    """The matcher list of the ``{`` at ``open_pos``, checked to be ``name op "value"`` items."""
    depth, pos = 1, open_pos + 1
    while pos < len(template):
        if template.startswith("{{", pos):
            end = template.find("}}", pos)
            if end < 0:
                break
            pos = end + 2
            continue
        char = template[pos]
        if char == '"':
            closing = re.compile(r'"(?:[^"\\\n]|\\.)*"').match(template, pos)
            if closing is None:
                break
            pos = closing.end()
            continue
        depth += {"{": 1, "}": -1}.get(char, 0)
        pos += 1
        if depth == 0:
            inner = template[open_pos + 1 : pos - 1]
            _check_matcher_list(inner, field)
            return inner
    raise ValueError(f"{field}: not PromQL: '{{' at character {open_pos + 1} is never closed")


def _check_matcher_list(inner: str, field: str) -> None:
    if not inner.strip():
        return  # {} is PromQL (Prometheus itself refuses an empty selector); narrowing catches it
    for item in _split_top(inner):
        if not _MATCHER.fullmatch(item):
            raise ValueError(
                f'{field}: not PromQL: {item.strip()!r} is not a label matcher (name op "value")'
            )


def _split_top(inner: str) -> list[str]:
    """Split a matcher list at commas outside strings and placeholders."""
    items, current, pos = [], "", 0
    while pos < len(inner):
        string = re.compile(r'"(?:[^"\\\n]|\\.)*"').match(inner, pos)
        hole = _PLACEHOLDER.match(inner, pos)
        if string or hole:
            part = (string or hole).group()  # type: ignore[union-attr]
            current, pos = current + part, pos + len(part)
            continue
        if inner[pos] == ",":
            items.append(current)
            current = ""
        else:
            current += inner[pos]
        pos += 1
    if current.strip() or not items:
        items.append(current)
    return [item for item in items if item.strip()] or [""]


def _check_narrowed(inner: str, field: str) -> None:
    items = [_MATCHER.fullmatch(item) for item in _split_top(inner)] if inner.strip() else []
    matches = [m for m in items if m is not None]
    whole = any(m.group("whole") for m in matches)
    namespaced = whole or any(
        m.group("label") in NAMESPACE_LABELS
        and m.group("op") == "="
        and _is_hole(m.group("value"), "namespace")
        for m in matches
        if m.group("label")
    )
    armed = whole or any(
        m.group("label") and m.group("op") in ("=", "=~") and _uses_arm(m.group("value")) for m in matches
    )
    if not namespaced:
        raise ValueError(
            f"{field}: selector {{{inner}}} escapes the canary's namespace: add "
            'namespace="{{namespace}}" (or use {{selector}})'
        )
    if not armed:
        raise ValueError(
            f"{field}: selector {{{inner}}} reads both arms alike: match a label on "
            + ", ".join(f"{{{{{p}}}}}" for p in _ARM_PLACEHOLDERS)
            + " (or use {{selector}})"
        )


def _is_hole(value: str, name: str) -> bool:
    inner = value[1:-1].strip()
    match = _PLACEHOLDER.fullmatch(inner)
    return match is not None and match.group(1) == name


def _uses_arm(value: str) -> bool:
    return bool(placeholders(value) & set(_ARM_PLACEHOLDERS))
