"""`crm templates list|set|delete|preview`: a tenant's own words for its codes and emails."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import typer
from rich.table import Table

from crm.cli.common import JsonOption, console, print_json, run_in_session, when

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from crm.messaging.models import MessageTemplate
    from crm.messaging.tenant_templates import Preview, TemplateWords
    from crm.runtime import Runtime

app = typer.Typer(
    help="A tenant's own words for its messages, per purpose (OTP, EMAIL_VERIFICATION, "
    "PASSWORD_RESET) and language. Placeholders: {tenant}, {duration}, and {code} (OTP) or "
    "{token} (the link or token of the others).",
    no_args_is_help=True,
)

Mode = Literal["live", "test"]
TenantOption = typer.Option(..., "--tenant", help="Tenant id.")
ModeOption = typer.Option(..., "--mode", help="live or test: the messages of that mode.")
PurposeArgument = typer.Argument(..., help="OTP, EMAIL_VERIFICATION or PASSWORD_RESET.")
LanguageArgument = typer.Argument(..., help="A language tag: en, el, pt-BR.")


def _document(row: MessageTemplate) -> dict[str, Any]:
    return {
        "purpose": row.purpose,
        "language": row.language,
        "sms": row.sms_text,
        "subject": row.email_subject,
        "text": row.email_text,
        "html": row.email_html,
        "updated_at": row.updated_at,
    }


def _read(value: str | None, file: Path | None, name: str) -> str | None:
    if value is not None and file is not None:
        raise typer.BadParameter(f"give --{name} or --{name}-file, not both")
    if file is not None:
        return file.read_text(encoding="utf-8")
    return value


def _words(
    sms: str | None,
    sms_file: Path | None,
    subject: str | None,
    text: str | None,
    text_file: Path | None,
    html_file: Path | None,
) -> TemplateWords:
    from crm.messaging.tenant_templates import TemplateWords

    return TemplateWords(
        sms=_read(sms, sms_file, "sms"),
        subject=subject,
        text=_read(text, text_file, "text"),
        html=_read(None, html_file, "html"),
    )


SmsOption = typer.Option(None, "--sms", help="The SMS text (OTP only).")
SmsFileOption = typer.Option(
    None, "--sms-file", exists=True, dir_okay=False, help="The SMS text from a file."
)
SubjectOption = typer.Option(None, "--subject", help="The email's subject.")
TextOption = typer.Option(None, "--text", help="The email's text (blank lines split paragraphs).")
TextFileOption = typer.Option(
    None, "--text-file", exists=True, dir_okay=False, help="The email's text from a file."
)
HtmlFileOption = typer.Option(
    None, "--html-file", exists=True, dir_okay=False, help="The email's HTML from a file."
)


@app.command("list")
def list_command(
    tenant: str = TenantOption, mode: Mode = ModeOption, as_json: bool = JsonOption
) -> None:
    """List the tenant's own templates (the others use the built-in words)."""
    from crm.messaging import tenant_templates as service

    async def work(runtime: Runtime, session: AsyncSession) -> list[MessageTemplate]:
        return await service.list_(session, tenant_id=tenant, mode=mode)

    rows = run_in_session(work)
    if as_json:
        print_json([_document(row) for row in rows])
        return
    table = Table("purpose", "language", "sms", "email", "updated")
    for row in rows:
        table.add_row(
            row.purpose,
            row.language,
            "yes" if row.sms_text else "",
            "yes" if row.email_text else "",
            when(row.updated_at),
        )
    console.print(table)


@app.command("set")
def set_command(
    purpose: str = PurposeArgument,
    language: str = LanguageArgument,
    tenant: str = TenantOption,
    mode: Mode = ModeOption,
    sms: str | None = SmsOption,
    sms_file: Path | None = SmsFileOption,
    subject: str | None = SubjectOption,
    text: str | None = TextOption,
    text_file: Path | None = TextFileOption,
    html_file: Path | None = HtmlFileOption,
    as_json: bool = JsonOption,
) -> None:
    """Set (or replace) the words of one purpose and language; validated before saving."""
    from crm.messaging import tenant_templates as service

    words = _words(sms, sms_file, subject, text, text_file, html_file)

    async def work(runtime: Runtime, session: AsyncSession) -> dict[str, Any]:
        row, _created = await service.put(
            session,
            runtime.clock,
            tenant_id=tenant,
            mode=mode,
            purpose=purpose.upper(),
            language=language,
            words=words,
        )
        return _document(row)

    saved = run_in_session(work)
    if as_json:
        print_json(saved)
        return
    console.print(f"Template {saved['purpose']}/{saved['language']} saved.")


@app.command("delete")
def delete_command(
    purpose: str = PurposeArgument,
    language: str = LanguageArgument,
    tenant: str = TenantOption,
    mode: Mode = ModeOption,
) -> None:
    """Delete one template: that purpose and language go back to the built-in words."""
    from crm.messaging import tenant_templates as service

    async def work(runtime: Runtime, session: AsyncSession) -> None:
        await service.delete(
            session, tenant_id=tenant, mode=mode, purpose=purpose.upper(), language=language
        )

    run_in_session(work)
    console.print(f"Template {purpose.upper()}/{language} deleted.")


@app.command("preview")
def preview_command(
    purpose: str = PurposeArgument,
    language: str = LanguageArgument,
    tenant: str = TenantOption,
    mode: Mode = ModeOption,
    sms: str | None = SmsOption,
    sms_file: Path | None = SmsFileOption,
    subject: str | None = SubjectOption,
    text: str | None = TextOption,
    text_file: Path | None = TextFileOption,
    html_file: Path | None = HtmlFileOption,
    as_json: bool = JsonOption,
) -> None:
    """Show the message with sample values: in the words given (not saved), else the saved
    template, else the built-in words."""
    from crm.messaging import tenant_templates as service

    words = _words(sms, sms_file, subject, text, text_file, html_file)

    async def work(runtime: Runtime, session: AsyncSession) -> Preview:
        return await service.preview(
            session,
            tenant_id=tenant,
            mode=mode,
            purpose=purpose.upper(),
            language=language,
            words=words,
        )

    shown = run_in_session(work)
    document = {
        "sms": shown.sms,
        "sms_segments": shown.sms_segments,
        "subject": shown.subject,
        "text": shown.text,
        "html": shown.html,
    }
    if as_json:
        print_json(document)
        return
    if shown.sms is not None:
        console.print(f"[bold]SMS[/bold] ({shown.sms_segments} segment):", highlight=False)
        console.print(shown.sms, markup=False, highlight=False)
    console.print(f"Subject: {shown.subject}", markup=False, highlight=False)
    console.print(shown.text or "", markup=False, highlight=False)
