"""Property tests for tools/templates.py: action parameters rendered in Jinja2's sandbox."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cronium.tools.base import ToolError
from cronium.tools.templates import MAX_RENDERED_CHARS, check_syntax, render

CONTEXT: dict[str, Any] = {
    "a": 1,
    "s": "héllo",
    "l": [1, "two", None],
    "d": {"k": "v"},
    "event": {"name": "nightly", "id": 7},
    "variables": {"region": "eu"},
}

# Plenty of braces, percent and hash signs, so near-misses of the markers are common.
plain_chars = st.one_of(st.characters(exclude_categories=["Cs"]), st.sampled_from("{}%# "))
plain_text = st.text(plain_chars, max_size=40).filter(
    lambda t: "{{" not in t and "{%" not in t and "{#" not in t
)
TEMPLATES = [
    "{{ a }}",
    "{{ a * 2 }} and {{ s | upper }}",
    "{% for x in l %}[{{ x }}]{% endfor %}",
    "{{ d.k }}{# a comment #}",
    "{{ event.name }}-{{ variables.region | default('none') }}",
    "{% if a > 0 %}yes{% else %}no{% endif %}",
    "{{ l | tojson }}",
    "{% raw %}{{ not rendered }}{% endraw %}",
]
template_text = st.builds(
    lambda before, template, after: f"{before} {template} {after}",  # no '{' + '{{'
    plain_text,
    st.sampled_from(TEMPLATES),
    plain_text,
)
keys = st.text(st.characters(exclude_categories=["Cs"]), max_size=8)
leaves = st.one_of(
    plain_text,
    template_text,
    st.integers(),
    st.floats(allow_nan=False),
    st.booleans(),
    st.none(),
)
params = st.recursive(
    leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(keys, children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300)
@given(plain_text)
def test_a_string_without_template_markers_comes_back_unchanged(text: str) -> None:
    assert render(text, CONTEXT) == text
    check_syntax(text)


def newlines(text: str) -> str:
    """Jinja's lexer turns the line endings of a template's text into '\\n'."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


@settings(max_examples=300)
@given(plain_text, st.sampled_from(TEMPLATES), plain_text)
def test_the_text_around_a_template_is_kept(before: str, template: str, after: str) -> None:
    # Spaces at the joins: '{' + '{{' would be another template.
    rendered = render(f"{before} {template} {after}", CONTEXT)
    assert rendered == f"{newlines(before)} {render(template, CONTEXT)} {newlines(after)}"


def assert_same_shape(source: Any, out: Any) -> None:
    if isinstance(source, dict):
        assert isinstance(out, dict) and list(out) == list(source)
        for key, value in source.items():
            assert_same_shape(value, out[key])
    elif isinstance(source, list):
        assert isinstance(out, list) and len(out) == len(source)
        for value, rendered in zip(source, out, strict=True):
            assert_same_shape(value, rendered)
    elif isinstance(source, str):
        assert isinstance(out, str)
        assert out == render(source, CONTEXT)  # a leaf renders as it would alone
    else:
        assert out is source  # numbers, booleans and None are passed through as they are


@settings(max_examples=200)
@given(params)
def test_structure_is_kept_and_rendering_is_deterministic(value: Any) -> None:
    before = copy.deepcopy(value)
    check_syntax(value)
    out = render(value, CONTEXT)
    assert value == before  # the input is not changed
    assert_same_shape(value, out)
    assert render(value, CONTEXT) == out


BASES = ["''", "[]", "{}", "a", "s", "l", "d", "event", "cycler", "joiner", "lipsum", "namespace",
         "range", "(1, 2)", "l.append", "d.items", "s.upper"]  # fmt: skip
# Attributes every object has: an attribute that does not exist is an unknown name
# (template_error) before the sandbox is even asked.
PRIVATE = ["__class__", "__init__", "__doc__", "__repr__", "__getattribute__", "__reduce__",
           "__reduce_ex__", "__subclasshook__", "__init_subclass__", "__dir__", "__format__"]  # fmt: skip
ACCESS = ["{base}.{attr}", "{base}['{attr}']", "({base} | attr('{attr}'))", "{base}.{attr}.x"]


@st.composite
def forbidden(draw: st.DrawFn) -> tuple[str, str]:
    access = draw(st.sampled_from(ACCESS)).format(
        base=draw(st.sampled_from(BASES)), attr=draw(st.sampled_from(PRIVATE))
    )
    wrapper = draw(
        st.sampled_from(
            ["{{{{ {} }}}}", "{{% set x = {} %}}{{{{ x }}}}", "{{% if {} %}}{{% endif %}}"]
        )
    )
    return f"{draw(plain_text)} {wrapper.format(access)} {draw(plain_text)}", draw(keys)


@settings(max_examples=300)
@given(forbidden())
def test_the_sandbox_refuses_underscore_attributes(case: tuple[str, str]) -> None:
    template, key = case
    with pytest.raises(ToolError) as caught:
        render({"p": [0, {key: template}]}, CONTEXT)
    assert caught.value.permanent
    assert caught.value.reason == "template_forbidden", caught.value.message
    assert caught.value.message.startswith(f"params.p[1].{key}: template refused by the sandbox")


# Templates with big outputs, and the length each renders to for a given n.
LARGE = {
    "{{{{ 'x' * {n} }}}}": lambda n: n,
    "{{{{ s * {n} }}}}": lambda n: 5 * n,
    "{{% for i in range({n}) %}}ab{{% endfor %}}": lambda n: 2 * n,
    "{{{{ 'y' * {n} }}}}{{{{ 'z' * {n} }}}}": lambda n: 2 * n,
    "{{{{ ['ab'] * {n} }}}}": lambda n: 6 * n if n else 2,
}


@settings(max_examples=60)
@given(
    st.sampled_from(sorted(LARGE)),
    st.one_of(st.integers(0, 100), st.integers(MAX_RENDERED_CHARS // 6, MAX_RENDERED_CHARS + 5)),
    plain_text,
)
def test_output_never_exceeds_the_limit(template: str, n: int, prefix: str) -> None:
    if "range" in template:
        n = min(n, 100_000)  # the sandbox's cap on range()
    expected = len(newlines(prefix)) + 1 + LARGE[template](n)
    text = f"{prefix} {template.format(n=n)}"  # a space: '{' + '{%' would be '{{%'
    if expected > MAX_RENDERED_CHARS:
        with pytest.raises(ToolError) as caught:
            render({"t": text}, CONTEXT)
        # Refused either while the output grows, or (for `*`) before the value is built.
        assert caught.value.permanent
        assert caught.value.message.startswith(
            f"params.t: rendered to more than {MAX_RENDERED_CHARS} characters"
        ) or caught.value.message.startswith(
            "params.t: template refused by the sandbox: repetition longer than"
        )
    else:
        assert len(render({"t": text}, CONTEXT)["t"]) == expected
