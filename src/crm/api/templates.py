"""Back-Office message templates: a tenant's own words for its codes and emails, per purpose
and language (`/backoffice/v1/templates`)."""

from __future__ import annotations

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel, ConfigDict, Field

from crm.api.deps import RuntimeDep, SecretKey, SessionDep
from crm.api.responses import error_responses
from crm.clock import epoch
from crm.messaging import tenant_templates as service
from crm.messaging.models import MessageTemplate
from crm.messaging.tenant_templates import TemplateWords

router = APIRouter(tags=["Templates"])

PurposePath = Path(description="`OTP`, `EMAIL_VERIFICATION` or `PASSWORD_RESET`.", examples=["OTP"])
LanguagePath = Path(description="A language tag: `en`, `el`, `pt-BR`.", examples=["en"])
_PLACEHOLDERS = (
    "Placeholders: `{tenant}`, `{duration}`, and `{code}` (OTP) or `{token}` (the link or "
    "token of EMAIL_VERIFICATION and PASSWORD_RESET), which every body must contain and no "
    "subject may; `{{` and `}}` write a brace."
)


class TemplateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sms: str | None = Field(
        None,
        description="The SMS of a one-time code (OTP only); it must fit one segment with the "
        "longest lifetime and the tenant's name as shortened to fit.",
        examples=["{code} is your {tenant} code ({duration}). Never share it."],
    )
    subject: str | None = Field(None, examples=["Your {tenant} code"])
    text: str | None = Field(
        None,
        description="The email's plain text; paragraphs are separated by a blank line.",
        examples=["Hello,\n\nYour code is {code}. It expires in {duration}."],
    )
    html: str | None = Field(
        None,
        description="The email's HTML (values are inserted HTML-escaped). Without it, the HTML "
        "is made from the text.",
    )

    def words(self) -> TemplateWords:
        return TemplateWords(sms=self.sms, subject=self.subject, text=self.text, html=self.html)


class TemplateRead(BaseModel):
    purpose: str = Field(examples=["OTP"])
    language: str = Field(examples=["en"])
    sms: str | None
    subject: str | None
    text: str | None
    html: str | None
    created_at: int = Field(description="Epoch seconds.")
    updated_at: int = Field(description="Epoch seconds.")


class TemplatePreview(BaseModel):
    sms: str | None = Field(description="The SMS as sent (OTP only).")
    sms_segments: int | None
    subject: str | None
    text: str | None
    html: str | None


def _read(row: MessageTemplate) -> TemplateRead:
    return TemplateRead(
        purpose=row.purpose,
        language=row.language,
        sms=row.sms_text,
        subject=row.email_subject,
        text=row.email_text,
        html=row.email_html,
        created_at=epoch(row.created_at) or 0,
        updated_at=epoch(row.updated_at) or 0,
    )


@router.get(
    "/templates",
    response_model=list[TemplateRead],
    responses=error_responses(401, 403),
    summary="List the tenant's own message templates",
    operation_id="listTemplates",
)
async def list_templates(caller: SecretKey, session: SessionDep) -> list[TemplateRead]:
    """The templates of the key's mode; a purpose and language without one uses the built-in
    words."""
    rows = await service.list_(session, tenant_id=caller.tenant_id, mode=caller.mode)
    return [_read(row) for row in rows]


@router.get(
    "/templates/{purpose}/{language}",
    response_model=TemplateRead,
    responses=error_responses(400, 401, 403, 404),
    summary="Read one message template",
    operation_id="getTemplate",
)
async def get_template(
    caller: SecretKey,
    session: SessionDep,
    purpose: str = PurposePath,
    language: str = LanguagePath,
) -> TemplateRead:
    row = await service.get(
        session, tenant_id=caller.tenant_id, mode=caller.mode, purpose=purpose, language=language
    )
    return _read(row)


@router.put(
    "/templates/{purpose}/{language}",
    response_model=TemplateRead,
    responses=error_responses(400, 401, 403, 404),
    summary="Set the tenant's words for one message purpose and language",
    description="Replaces the built-in words of the key's mode (test keys change test-mode "
    "messages only). Give `sms`, or `subject` and `text` (and optionally `html`), or both; a "
    "part left out keeps the built-in words. " + _PLACEHOLDERS + " Refused with 400 "
    "`TEMPLATE_UNKNOWN_PLACEHOLDER`, `TEMPLATE_CODE_MISSING`, `TEMPLATE_SECRET_IN_SUBJECT`, "
    "`TEMPLATE_SMS_TOO_LONG`, `TEMPLATE_SYNTAX_INVALID` or `TEMPLATE_INVALID`.",
    operation_id="putTemplate",
)
async def put_template(
    body: TemplateIn,
    caller: SecretKey,
    session: SessionDep,
    runtime: RuntimeDep,
    response: Response,
    purpose: str = PurposePath,
    language: str = LanguagePath,
) -> TemplateRead:
    row, created = await service.put(
        session,
        runtime.clock,
        tenant_id=caller.tenant_id,
        mode=caller.mode,
        purpose=purpose,
        language=language,
        words=body.words(),
    )
    response.status_code = 201 if created else 200
    return _read(row)


@router.delete(
    "/templates/{purpose}/{language}",
    status_code=204,
    response_class=Response,
    responses=error_responses(400, 401, 403, 404),
    summary="Go back to the built-in words",
    operation_id="deleteTemplate",
)
async def delete_template(
    caller: SecretKey,
    session: SessionDep,
    purpose: str = PurposePath,
    language: str = LanguagePath,
) -> Response:
    await service.delete(
        session, tenant_id=caller.tenant_id, mode=caller.mode, purpose=purpose, language=language
    )
    return Response(status_code=204)


@router.post(
    "/templates/{purpose}/{language}/preview",
    response_model=TemplatePreview,
    responses=error_responses(400, 401, 403, 404),
    summary="Preview a message with sample values",
    description="Renders the words in the body (validated, not saved), or with an empty body "
    "the saved template, or the built-in words, with the tenant's name, the code `123456` or "
    "a sample link, and a sample lifetime.",
    operation_id="previewTemplate",
)
async def preview_template(
    caller: SecretKey,
    session: SessionDep,
    body: TemplateIn | None = None,
    purpose: str = PurposePath,
    language: str = LanguagePath,
) -> TemplatePreview:
    shown = await service.preview(
        session,
        tenant_id=caller.tenant_id,
        mode=caller.mode,
        purpose=purpose,
        language=language,
        words=body.words() if body is not None else None,
    )
    return TemplatePreview(
        sms=shown.sms,
        sms_segments=shown.sms_segments,
        subject=shown.subject,
        text=shown.text,
        html=shown.html,
    )
