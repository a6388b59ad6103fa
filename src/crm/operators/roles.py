"""What each operator role may do: one table, read by the console before every action."""

from __future__ import annotations

from enum import StrEnum

from crm.vocabulary import OperatorRole


class Permission(StrEnum):
    CONTACTS_READ = "contacts.read"
    CONTACTS_WRITE = "contacts.write"  # create, edit, identities, sessions, unlock
    CONTACTS_ERASE = "contacts.erase"
    MESSAGES_READ = "messages.read"  # statuses, never bodies
    MESSAGES_MANAGE = "messages.manage"  # retry; read test-mode codes
    INTEGRATIONS = "integrations"
    APPLICATIONS = "applications"  # applications and their keys
    OPERATORS = "operators"
    ACTIVITY = "activity"  # the activity log: sign-ins and platform changes


_READ = frozenset({Permission.CONTACTS_READ, Permission.MESSAGES_READ})
_AGENT = _READ | {Permission.CONTACTS_WRITE}
_ADMIN = _AGENT | {
    Permission.CONTACTS_ERASE,
    Permission.MESSAGES_MANAGE,
    Permission.INTEGRATIONS,
    Permission.APPLICATIONS,
    Permission.ACTIVITY,
}
PERMISSIONS: dict[str, frozenset[Permission]] = {
    OperatorRole.OWNER: _ADMIN | {Permission.OPERATORS},
    OperatorRole.ADMIN: _ADMIN,
    OperatorRole.AGENT: _AGENT,
    OperatorRole.VIEWER: _READ,
}
ROLES = tuple(role.value for role in OperatorRole)


def can(role: str, permission: Permission) -> bool:
    return permission in PERMISSIONS.get(role, frozenset())
