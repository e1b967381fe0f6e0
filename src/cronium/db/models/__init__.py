"""All tables; importing this module registers every model on `Base.metadata`."""

from cronium.db.models.accounts import ApiToken, AuditLog, Session, Setting, User
from cronium.db.models.base import (
    ActionTrigger,
    ActionType,
    Base,
    EventStatus,
    EventType,
    ExecutionStatus,
    JobStatus,
    Language,
    LogStream,
    MisfirePolicy,
    OverlapPolicy,
    Role,
    ScheduleKind,
    ServerAuthType,
    ServerStatus,
    ToolKind,
    Trigger,
)
from cronium.db.models.events import Event, EventAction, EventServer
from cronium.db.models.resources import Server, ToolCredential, Variable
from cronium.db.models.runs import Execution, Job, LogLine

__all__ = [
    "ActionTrigger",
    "ActionType",
    "ApiToken",
    "AuditLog",
    "Base",
    "Event",
    "EventAction",
    "EventServer",
    "EventStatus",
    "EventType",
    "Execution",
    "ExecutionStatus",
    "Job",
    "JobStatus",
    "Language",
    "LogLine",
    "LogStream",
    "MisfirePolicy",
    "OverlapPolicy",
    "Role",
    "ScheduleKind",
    "Server",
    "ServerAuthType",
    "ServerStatus",
    "Session",
    "Setting",
    "ToolCredential",
    "ToolKind",
    "Trigger",
    "User",
    "Variable",
]
