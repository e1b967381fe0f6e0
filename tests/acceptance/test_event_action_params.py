"""Tool actions are checked when the event is saved: a run must not be the first to find out."""

from __future__ import annotations

from typing import Any

from tests.conftest import Api


async def _credential(user: Api) -> int:
    created = await user.post(
        "/credentials",
        json={"name": "hook", "tool": "webhook", "config": {"url": "https://example.com/h"}},
    )
    assert created.status_code == 201, created.text
    return int(created.json()["id"])


def _event(cred: int, params: dict[str, Any], action: str = "webhook.send") -> dict[str, Any]:
    return {
        "name": "notify",
        "language": "bash",
        "content": "false",
        "actions": [
            {
                "on": "on_failure",
                "type": "tool",
                "credential_id": cred,
                "action": action,
                "params": params,
            }
        ],
    }


async def test_params_of_the_wrong_shape_are_refused_at_the_field(user: Api) -> None:
    cred = await _credential(user)
    response = await user.post("/events", json=_event(cred, {"body": {"text": "failed"}}))
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["details"]["field"] == "actions.0.params.body"
    assert "valid string" in error["message"]


async def test_unknown_action_and_bad_template_syntax_are_refused(user: Api) -> None:
    cred = await _credential(user)
    response = await user.post("/events", json=_event(cred, {}, action="webhook.explode"))
    assert response.status_code == 422
    assert response.json()["error"]["details"]["field"] == "actions.0.action"
    response = await user.post("/events", json=_event(cred, {"body": "{{ event.name "}))
    assert response.status_code == 422
    assert response.json()["error"]["details"]["field"] == "actions.0.params.body"


async def test_templates_and_good_params_are_accepted(user: Api) -> None:
    cred = await _credential(user)
    response = await user.post(
        "/events", json=_event(cred, {"body": "{{ event.name }} failed: {{ execution.error }}"})
    )
    assert response.status_code == 201, response.text
    # The tool event's own params are checked the same way.
    tool_event = {
        "name": "ping",
        "type": "tool",
        "tool": {"credential_id": cred, "action": "webhook.send", "params": {"body": ["x"]}},
    }
    response = await user.post("/events", json=tool_event)
    assert response.status_code == 422
    assert response.json()["error"]["details"]["field"] == "tool.params.body"
