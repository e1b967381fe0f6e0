"""The tool catalogue: each tool, its credential schema and its actions' parameters."""

from __future__ import annotations

from fastapi import APIRouter

from cronium.api.deps import PrincipalDep
from cronium.api.listing import Page
from cronium.api.schemas.tools import ToolOut
from cronium.tools.registry import catalogue

router = APIRouter(prefix="/tools", tags=["tools"])


@router.get("", response_model=Page[ToolOut])
async def list_tools(principal: PrincipalDep) -> Page[ToolOut]:
    """Every tool with the JSON Schemas of its credential config and action parameters."""
    items = [ToolOut.model_validate(tool) for tool in catalogue()]
    return Page(items=items, total=len(items), limit=len(items), offset=0)
