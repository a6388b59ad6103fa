"""Operators: create, list, disable, reset a password, and sign in (with the customers' password
policy and failure throttling)."""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm.clock import Clock
from crm.errors import InvalidRequest
from crm.identities import throttle
from crm.identities.errors import IdentityLocked
from crm.identities.models import FailureCounter
from crm.identities.policy import Policy
from crm.ids import uuid7
from crm.operators import activity, sessions
from crm.operators.activity import Actor
from crm.operators.errors import (
    InvalidOperatorRole,
    LastOwner,
    OperatorExists,
    OperatorLocked,
    OperatorNotFound,
    SignInFailed,
    TotpCodeWrong,
)
from crm.operators.models import Operator
from crm.operators.roles import ROLES
from crm.security import passwords, totp
from crm.security.crypto import SecretBox
from crm.tenants.errors import TenantNotFound
from crm.tenants.models import Tenant
from crm.vocabulary import OperatorAction, OperatorRole

MAX_EMAIL = 320


def normalize_email(value: str) -> str:
    """The stored form of an operator's email: trimmed and lowercased, one `@`, printable."""
    clean = value.strip().lower() if isinstance(value, str) else ""
    local, at, domain = clean.partition("@")
    if (
        not at
        or not local
        or "." not in domain
        or "@" in domain
        or len(clean) > MAX_EMAIL
        or not clean.isprintable()
        or any(ch.isspace() for ch in clean)
    ):
        raise InvalidRequest(details=[{"field": "email", "message": "must be an email address"}])
    return clean


def _role(value: str) -> str:
    role = value.strip().lower() if isinstance(value, str) else ""
    if role not in ROLES:
        raise InvalidOperatorRole(
            details=[{"field": "role", "message": f"must be one of: {', '.join(ROLES)}"}]
        )
    return role


def lock_subject(operator_id: str) -> str:
    """The failure counter of an operator's password (named plainly: an owner lifts it)."""
    return f"operator:{operator_id}"


async def create_operator(
    session: AsyncSession,
    clock: Clock,
    *,
    tenant_id: str,
    email: str,
    role: str,
    password: str,
    actor: Actor,
) -> Operator:
    """A new operator of `tenant_id`; the password must meet the customers' policy."""
    address = normalize_email(email)
    chosen = _role(role)
    if await session.get(Tenant, tenant_id) is None:
        raise TenantNotFound()
    passwords.check_password_policy(password, context=[address, address.partition("@")[0]])
    if await session.scalar(select(Operator.id).where(Operator.email == address)):
        raise OperatorExists(details=[{"field": "email", "message": OperatorExists.message}])
    operator = Operator(
        id=uuid7(),
        tenant_id=tenant_id,
        email=address,
        role=chosen,
        password_hash=await passwords.hash_password(password),
        created_at=clock.now(),
    )
    session.add(operator)
    await session.flush()
    activity.record(
        session,
        clock,
        tenant_id=tenant_id,
        actor=actor,
        action=OperatorAction.OPERATOR_CREATED,
        target=address,
        detail={"role": chosen},
    )
    return operator


async def list_operators(session: AsyncSession, tenant_id: str | None = None) -> list[Operator]:
    query = select(Operator).order_by(Operator.created_at, Operator.id)
    if tenant_id is not None:
        query = query.where(Operator.tenant_id == tenant_id)
    return list(await session.scalars(query))


async def get_operator(
    session: AsyncSession, operator_ref: str, tenant_id: str | None = None
) -> Operator:
    """An operator by id or email; with `tenant_id`, only one of that tenant (else 404)."""
    if not isinstance(operator_ref, str) or len(operator_ref) > MAX_EMAIL:
        raise OperatorNotFound()
    condition = (
        Operator.email == operator_ref.strip().lower()
        if "@" in operator_ref
        else Operator.id == operator_ref
    )
    query = select(Operator).where(condition)
    if tenant_id is not None:
        query = query.where(Operator.tenant_id == tenant_id)
    found = await session.scalar(query)
    if found is None:
        raise OperatorNotFound()
    return found


def _sign_in_address(email: str) -> str:
    return email.strip().lower()[:MAX_EMAIL] if isinstance(email, str) else ""


async def find_by_email(session: AsyncSession, email: str) -> Operator | None:
    """The operator a sign-in form's address names, if any (of any tenant: addresses are unique)."""
    return await session.scalar(select(Operator).where(Operator.email == _sign_in_address(email)))


async def _other_active_owners(session: AsyncSession, operator: Operator) -> int:
    count = await session.scalar(
        select(func.count())
        .select_from(Operator)
        .where(
            Operator.tenant_id == operator.tenant_id,
            Operator.role == OperatorRole.OWNER,
            Operator.disabled_at.is_(None),
            Operator.id != operator.id,
        )
    )
    return int(count or 0)


async def disable_operator(
    session: AsyncSession, clock: Clock, operator: Operator, *, actor: Actor
) -> Operator:
    """Stop `operator` signing in and end its sessions; a tenant keeps one active owner."""
    if operator.role == OperatorRole.OWNER and operator.disabled_at is None:
        if not await _other_active_owners(session, operator):
            raise LastOwner()
    if operator.disabled_at is None:
        operator.disabled_at = clock.now()
        activity.record(
            session,
            clock,
            tenant_id=operator.tenant_id,
            actor=actor,
            action=OperatorAction.OPERATOR_DISABLED,
            target=operator.email,
        )
    await sessions.end_all(session, clock, operator.id)
    return operator


async def reset_password(
    session: AsyncSession, clock: Clock, operator: Operator, *, password: str, actor: Actor
) -> Operator:
    """A new password: every session ends and the failure count and lock are lifted."""
    passwords.check_password_policy(
        password, context=[operator.email, operator.email.partition("@")[0]]
    )
    operator.password_hash = await passwords.hash_password(password)
    await sessions.end_all(session, clock, operator.id)
    await session.execute(
        delete(FailureCounter).where(FailureCounter.subject == lock_subject(operator.id))
    )
    activity.record(
        session,
        clock,
        tenant_id=operator.tenant_id,
        actor=actor,
        action=OperatorAction.PASSWORD_RESET,
        target=operator.email,
    )
    return operator


def sign_in_policy(*, lock_threshold: int, lock_seconds: int) -> Policy:
    """The customers' throttling with the console's own lock: a few failures from one address
    delay it, and `lock_threshold` failures lock the operator for `lock_seconds`."""
    return replace(
        Policy(),
        failure_lock_threshold=lock_threshold,
        failure_lock_seconds=lock_seconds,
        failure_delay_threshold=lock_threshold + 1,
    )


async def authenticate(
    session: AsyncSession,
    clock: Clock,
    secret: str,
    *,
    email: str,
    password: str,
    client_address: str | None,
    policy: Policy,
    code: str = "",
) -> Operator:
    """The operator these credentials name, or SignInFailed (the same for every reason). An
    operator with a second factor must also send the authenticator's current `code`.

    Failures are counted on the session before raising: the caller commits them.
    """
    address = _sign_in_address(email)
    operator = await find_by_email(session, address)
    subject_id = (
        lock_subject(operator.id)
        if operator is not None
        else throttle.subject_key(secret, "operator-unknown", address)
    )
    guard = await throttle.guard(
        session,
        secret,
        kind=throttle.Kind.PASSWORD,
        subject=await throttle.counter(session, subject_id),
        subject_id=subject_id,
        client=throttle.client_key(secret, "console", client_address),
        policy=policy,
    )
    now = clock.now()
    try:
        guard.check(now)
    except IdentityLocked:
        raise OperatorLocked() from None
    if operator is None or operator.disabled_at is not None:
        await passwords.verify_against_dummy(password)
        guard.failure(now)
        raise SignInFailed()
    if not await passwords.verify_password(operator.password_hash, password):
        guard.failure(now)
        raise SignInFailed()
    if operator.totp_secret_encrypted is not None:
        step = totp.matching_step(
            _totp_box(secret).decrypt(operator.totp_secret_encrypted).decode(),
            code,
            now.timestamp(),
        )
        # A code already used (seen over a shoulder, or replayed) counts as a wrong one.
        if step is None or step <= (operator.totp_last_step or -1):
            guard.failure(now)
            raise SignInFailed()
        operator.totp_last_step = step
    guard.success()
    if passwords.needs_rehash(operator.password_hash):
        operator.password_hash = await passwords.hash_password(password)
    return operator


def _totp_box(secret: str) -> SecretBox:
    return SecretBox(secret, "operator-totp")


async def enrol_totp(
    session: AsyncSession,
    clock: Clock,
    secret: str,
    operator: Operator,
    *,
    totp_secret: str,
    code: str,
) -> Operator:
    """Turn on the second factor once the operator proves their app shows `totp_secret`'s codes."""
    step = totp.matching_step(totp_secret, code, clock.now().timestamp())
    if step is None:
        raise TotpCodeWrong(details=[{"field": "code", "message": TotpCodeWrong.message}])
    operator.totp_secret_encrypted = _totp_box(secret).encrypt(totp_secret.strip().upper())
    operator.totp_last_step = step
    await session.flush()
    return operator
