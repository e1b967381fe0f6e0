"""Every field the events API validates has an error slot in the editor, by the API's path.

app.js places each validation detail in `[data-error-for="<field>"]`; a field without its
own slot would show its error somewhere else (a parent's slot or the form's box).
"""

from __future__ import annotations

import re

import httpx
from pydantic import BaseModel

from cronium.api.schemas.events import (
    CronSchedule,
    EventIn,
    HttpSpec,
    IntervalSchedule,
    ManualSchedule,
    OnceSchedule,
    Resources,
    Targets,
    ToolSpec,
    WebhookIn,
)
from tests.conftest import PASSWORD, Api, Persona

NESTED: dict[str, tuple[type[BaseModel], ...]] = {
    "schedule": (ManualSchedule, CronSchedule, IntervalSchedule, OnceSchedule),
    "http": (HttpSpec,),
    "tool": (ToolSpec,),
    "targets": (Targets,),
    "resources": (Resources,),
    "webhook": (WebhookIn,),
}


def api_fields() -> set[str]:
    fields = set()
    for name in EventIn.model_fields:
        for model in NESTED.get(name, ()):
            fields |= {f"{name}.{sub}" for sub in model.model_fields}
        fields.add(name)
    return fields


def slots(html: str) -> set[str]:
    return set(re.findall(r'data-error-for="([^"]+)"', html))


async def test_every_event_field_has_an_error_slot(
    client: httpx.AsyncClient, api: dict[str, Api], personas: dict[str, Persona]
) -> None:
    login = await client.post(
        "/api/v1/auth/login", json={"email": personas["user"].email, "password": PASSWORD}
    )
    assert login.status_code == 200, login.text
    expected = api_fields() | {"credential_id"}  # a credential the owner lacks
    new = await client.get("/events/new")
    assert new.status_code == 200
    assert expected - slots(new.text) == set()

    created = await api["user"].post(
        "/events",
        json={
            "name": "hooked",
            "language": "bash",
            "content": "true",
            "webhook": {"enabled": True},
        },
    )
    assert created.status_code == 201, created.text
    edit = await client.get(f"/events/{created.json()['id']}/edit")
    assert edit.status_code == 200
    assert expected - slots(edit.text) == set()
    assert 'id="webhook-url"' in edit.text  # the edit page shows the URL to copy
    run = await client.get(f"/events/{created.json()['id']}")
    assert 'data-error-for="input"' in run.text  # Run now's JSON input
