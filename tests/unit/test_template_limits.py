"""A template cannot make Cronium allocate without bound before the output limit is checked."""

from __future__ import annotations

import pytest

from cronium.tools.base import ToolError
from cronium.tools.templates import MAX_RENDERED_CHARS, MAX_STEPS, render

HUGE = [
    "{{ 'x' * 10**10 }}",
    "{{ [1] * 10**9 }}",
    "{{ 10 ** 100000 }}",
    "{{ 'x'|center(10**9) }}",
    "{{ 'a'|indent(10**9) }}",
    "{{ '%999999999s'|format('x') }}",
    "{{ '%*s'|format(999999999, 'x') }}",
    "{{ '%.99999999f'|format(1.0) }}",
    "{{ '{:>999999999}'.format('x') }}",
    "{{ '{0:099999999}'.format(1) }}",
]


@pytest.mark.parametrize("template", HUGE)
def test_huge_values_are_refused_before_they_are_built(template: str) -> None:
    with pytest.raises(ToolError) as caught:
        render({"text": template}, {})
    assert caught.value.reason == "template_forbidden"
    assert caught.value.message.startswith("params.text: ")


def test_loops_stop_as_soon_as_the_output_passes_the_limit() -> None:
    loops = (
        "{% for i in range(100000) %}{% for j in range(100000) %}xxxxxxxxxx{% endfor %}{% endfor %}"
    )
    with pytest.raises(ToolError) as caught:
        render(loops, {})
    assert caught.value.reason == "template_error"
    assert f"more than {MAX_RENDERED_CHARS} characters" in caught.value.message


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ 2 ** 10 }}", "1024"),
        ("{{ 'ab' * 3 }}", "ababab"),
        ("{{ 3 * 'ab' }}", "ababab"),
        ("{{ '%5s'|format('x') }}", "    x"),
        ("{{ '%d'|format(123456789012) }}", "123456789012"),
        ("{{ '{:>5}'.format('x') }}", "    x"),
        ("{{ 'x'|center(5) }}", "  x  "),
        ("{{ 'x' * " + str(MAX_RENDERED_CHARS) + " }}", "x" * MAX_RENDERED_CHARS),
    ],
)
def test_ordinary_arithmetic_and_padding_still_work(template: str, expected: str) -> None:
    assert render(template, {}) == expected


SLOW = [
    # Loops and calls that print nothing: no output limit ever stops them.
    "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}",
    "{% for a in items %}{% for b in items %}{% for c in items %}{% endfor %}{% endfor %}{% endfor %}",
    "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(40) }}",
    "{% for a in range(100000) %}{{ ''.join([]) }}{{ ''.join([]) }}{% endfor %}",
]


@pytest.mark.parametrize("template", SLOW)
def test_templates_that_would_run_for_hours_are_stopped_by_the_step_budget(template: str) -> None:
    with pytest.raises(ToolError) as caught:
        render(template, {"items": list(range(1000))})
    assert caught.value.reason == "template_forbidden"
    assert f"more than {MAX_STEPS} steps" in caught.value.message


def test_loops_within_the_budget_keep_their_loop_variable_and_else() -> None:
    template = (
        "{% for x in items %}{{ loop.index }}/{{ loop.length }}={{ x }} {% endfor %}"
        "{% for y in [] %}y{% else %}empty{% endfor %}"
    )
    assert render(template, {"items": ["a", "b"]}) == "1/2=a 2/2=b empty"
    # One step per item, the budget is per render: loops just inside it run every time.
    fits = "{% for a in range(90000) %}{% endfor %}" * 2 + "ok"
    assert MAX_STEPS > 2 * 90_000
    assert render(fits, {}) == "ok"
    assert render(fits, {}) == "ok"
