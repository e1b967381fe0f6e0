"""`cronium import`: load event definitions from YAML files, idempotently by name.

A file holds one event in the API's shape (DESIGN §10) plus two extras: actions may name
their target with `event: <name>` instead of `event_id`, and an `expect:` block (used by
the test-event suite) is ignored here. Importing the same files twice changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cronium.api.schemas.events import EventIn
from cronium.db.models import Event
from cronium.domain.events import save_event
from cronium.errors import ValidationFailed
from cronium.security.crypto import Cipher

IGNORED_KEYS = ("expect", "executors")


@dataclass(frozen=True)
class Definition:
    path: Path
    data: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.data.get("name", ""))


def load_definitions(paths: list[Path]) -> list[Definition]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml")))
        elif path.is_file():
            files.append(path)
        else:
            raise ValidationFailed(f"{path}: no such file or directory")
    definitions = []
    for file in files:
        try:
            data = yaml.safe_load(file.read_text())
        except yaml.YAMLError as exc:
            raise ValidationFailed(f"{file}: not valid YAML: {exc}") from None
        if not isinstance(data, dict) or not data.get("name"):
            raise ValidationFailed(f"{file}: expected a mapping with at least a 'name'")
        definitions.append(Definition(file, data))
    names = [d.name for d in definitions]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValidationFailed(f"event name(s) defined twice: {', '.join(duplicates)}")
    return definitions


async def import_events(
    db: AsyncSession, cipher: Cipher, owner_id: int, definitions: list[Definition]
) -> dict[str, tuple[int, str]]:
    """Create or update each event (actions resolved by name); returns name → (id, verb)."""
    existing = {
        e.name: e for e in (await db.scalars(select(Event).where(Event.owner_id == owner_id))).all()
    }
    result: dict[str, tuple[int, str]] = {}
    # First pass without actions so every name exists; second pass sets the actions.
    for phase in ("create", "actions"):
        for definition in definitions:
            body = _body(definition, phase, {n: e.id for n, e in existing.items()})
            event = existing.get(definition.name)
            verb = "updated" if event is not None else "created"
            if event is None:
                event = Event(
                    owner_id=owner_id, execution_count=0, env_keys=[], webhook_enabled=False
                )
            fields: dict[str, Any] = dict.fromkeys(body.model_fields_set, True) | {
                "env": True,
                "webhook": {},
            }
            if phase == "actions":
                fields = {"actions": True, "webhook": {}}
            await save_event(db, event, body, cipher, fields_set=fields)
            existing[definition.name] = event
            if phase == "create":
                result[definition.name] = (event.id, verb)
    return result


def _body(definition: Definition, phase: str, ids: dict[str, int]) -> EventIn:
    data = {k: v for k, v in definition.data.items() if k not in IGNORED_KEYS}
    actions = data.pop("actions", [])
    if phase == "actions":
        data["actions"] = [_resolve(definition, a, ids) for a in actions]
    try:
        return EventIn.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "event"
        raise ValidationFailed(f"{definition.path}: {where}: {err['msg']}") from None


def _resolve(definition: Definition, raw: dict[Any, Any], ids: dict[str, int]) -> dict[str, Any]:
    # YAML 1.1 reads an unquoted `on:` key as the boolean true.
    action: dict[str, Any] = {("on" if k is True else str(k)): v for k, v in raw.items()}
    name = action.pop("event", None)
    if name is not None:
        if name not in ids:
            raise ValidationFailed(f"{definition.path}: action names unknown event {name!r}")
        action["event_id"] = ids[name]
    return action
