"""Activation assets: what SendGrid holds after a push (templates, audiences, letters sent)."""

from pathlib import Path

import dagster as dg
from dagster_duckdb import DuckDBResource

from lifecycle_assets import environment
from lifecycle_assets.activation import ledger
from lifecycle_assets.activation.audiences import sync_audiences
from lifecycle_assets.activation.client import SendGridAuthError, SendGridError, SendGridRejected
from lifecycle_assets.activation.letters import LetterSender, push_letters
from lifecycle_assets.activation.lift import LETTER_LIFT
from lifecycle_assets.activation.policy import ContactPolicy
from lifecycle_assets.activation.resources import SendGridResource
from lifecycle_assets.activation.previews import LetterPreview, write_html_previews
from lifecycle_assets.activation.templates import LetterTemplate, load_templates, render_letter, sync_templates
from lifecycle_assets.metadata import markdown_table
from lifecycle_assets.webhook.engagement import RATE_EVENTS, engagement_by_letter_type

LETTERS_PLANNED = dg.AssetKey(["marts", "letters_planned"])
AUDIENCES = dg.AssetKey(["marts", "audiences"])
SENDGRID_TEMPLATES = dg.AssetKey(["activation", "sendgrid_templates"])
SENDGRID_AUDIENCES = dg.AssetKey(["activation", "sendgrid_audiences"])
SENDGRID_LETTERS = dg.AssetKey(["activation", "sendgrid_letters"])
OWNERS = ["team:lifecycle-marketing"]
NO_UNSUBSCRIBE_GROUP = (
    "SENDGRID_UNSUBSCRIBE_GROUP_ID is not set: every letter carries an unsubscribe link "
    "(<%asm_group_unsubscribe_raw_url%>) that only works with an unsubscribe group, so no marketing letter is sent. "
    "Create the group in SendGrid (Suppressions > Unsubscribe Groups) and set its id."
)
KINDS = {"sendgrid", "duckdb"}


def _stop_run(error: SendGridError) -> dg.Failure:
    """401/403 and an unreachable SendGrid stop the run with a message that names the cause, never the key."""
    if isinstance(error, SendGridAuthError):
        title = "SendGrid refused the API key"
    elif isinstance(error, SendGridRejected):
        title = "SendGrid rejected a request"
    else:
        title = "SendGrid is unavailable"
    return dg.Failure(description=f"{title}: {error}", allow_retries=not isinstance(error, SendGridAuthError))


def _two_column_table(header: tuple[str, str], rows: dict) -> str:
    return markdown_table(list(header), list(rows.items()))


def _letter_previews(templates: dict[str, LetterTemplate], log) -> str:
    """One letter of each type as a customer reads it (subject and text part), filled with its sample.json."""
    import pybars

    sections = []
    for name, template in sorted(templates.items()):
        if template.sample is None:
            sections.append(f"### {name}\n\n_no sample.json in templates/{name}/: nothing to preview_")
            continue
        try:
            letter = render_letter(template, template.sample)
        except pybars.PybarsError as error:
            # SendGrid's handlebars knows helpers pybars lacks; the push itself does not depend on the preview.
            log(f"letter template {name!r} could not be previewed: {error}")
            sections.append(f"### {name}\n\n_could not render the preview: {error}_")
            continue
        sections.append(f"### {name}\n\n**Subject:** {letter.subject}\n\n```text\n{letter.text.strip()}\n```")
    return "\n\n".join(sections)


def _preview_files_table(previews: dict[str, LetterPreview]) -> str:
    """Where a marketer opens each letter: its HTML file and the screenshots that still show it."""
    rows = []
    for name, preview in sorted(previews.items()):
        # File names in previews_dir (a separate entry): a table cell cuts long paths.
        shots = [f"`{preview.screenshots[width].name}`" if width in preview.screenshots else "-" for width in ("desktop", "phone")]
        rows.append((name, f"`{preview.html_file.name}`", f"{preview.html_bytes:,}", *shots))
    table = markdown_table(["letter type", "HTML preview", "HTML bytes", "desktop screenshot", "phone screenshot"], rows)
    if any(len(preview.screenshots) < 2 for preview in previews.values()):
        table += "\n\n_A missing or outdated screenshot: run `make previews` (headless chromium)._"
    return table


@dg.asset(
    key=SENDGRID_TEMPLATES,
    group_name="activation",
    kinds={"sendgrid"},
    owners=OWNERS,
)
def sendgrid_templates(context: dg.AssetExecutionContext, sendgrid: SendGridResource) -> dg.MaterializeResult:
    """The letter templates kept in this repository, as active SendGrid dynamic templates.

    A template is created when missing and gets a new active version only when its subject or body changed.
    The metadata shows one letter of each type rendered with its sample personalisation, and links its
    HTML preview and screenshots (written to LIFECYCLE_PREVIEWS_DIR; screenshots by `make previews`).
    """
    templates = load_templates(Path(sendgrid.templates_dir))
    previews = write_html_previews(templates, Path(sendgrid.previews_dir))
    session = sendgrid.session(context.run.run_id, log=context.log.warning)
    if not session.dry_run and not environment.shop_postal_address_is_set():
        context.log.warning(
            "LIFECYCLE_SHOP_POSTAL_ADDRESS is not set: every letter's footer shows the sample shop's example "
            "address. Set the shop's postal address (docs/letters.md); many countries require it in marketing mail."
        )
    try:
        result = sync_templates(session, templates)
    except SendGridError as error:
        raise _stop_run(error) from None
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(templates),
            "shop_postal_address_set": environment.shop_postal_address_is_set(),
            "templates_created": len(result.created),
            "templates_new_versions": len(result.new_versions),
            "templates_unchanged": len(result.unchanged),
            "requests_made": session.stats.requests,
            "dry_run": session.dry_run,
            "preview": dg.MetadataValue.md(
                _two_column_table(
                    ("template", "content hash"), {name: t.content_hash for name, t in sorted(templates.items())}
                )
            ),
            "letter_previews": dg.MetadataValue.md(_letter_previews(templates, context.log.warning)),
            "previews_dir": dg.MetadataValue.path(sendgrid.previews_dir),
            "preview_files": dg.MetadataValue.md(_preview_files_table(previews)),
            # Gmail clips a letter above ~102 KB of HTML: a line to watch across syncs.
            "largest_letter_html_bytes": max((preview.html_bytes for preview in previews.values()), default=0),
            "screenshots_current": sum(len(preview.screenshots) for preview in previews.values()),
        }
    )


@dg.asset(
    key=SENDGRID_AUDIENCES,
    deps=[AUDIENCES],
    group_name="activation",
    kinds=KINDS,
    owners=OWNERS,
)
def sendgrid_audiences(
    context: dg.AssetExecutionContext, sendgrid: SendGridResource, duckdb: DuckDBResource
) -> dg.MaterializeResult:
    """One SendGrid contact list per audience segment, holding exactly the customers of that segment.

    Only what changed since the last successful sync is sent: new members, departed members and changed contacts.
    """
    session = sendgrid.session(context.run.run_id, log=context.log.warning)
    with duckdb.get_connection() as connection, sendgrid.thread_pool() as pool:
        ledger.ensure_schema(connection)
        try:
            result = sync_audiences(
                connection, session, pool, context.run.run_id, sendgrid.import_poll_timeout_seconds
            )
        except SendGridError as error:
            raise _stop_run(error) from None
    if result.import_jobs_with_errors:
        context.log.warning(
            f"{result.import_jobs_with_errors} contact import job(s) reported errors for {result.rows_with_errors} "
            "row(s); see activation.contact_import_jobs. Those contacts are retried on the next push."
        )
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": result.contacts_in_audiences,
            "lists": len(result.list_sizes),
            "lists_created": len(result.lists_created),
            "custom_fields_created": len(result.fields_created),
            "contacts_upserted": result.contacts_upserted,
            "list_adds": result.list_adds,
            "list_removes": result.list_removes,
            "upsert_requests": result.upsert_requests,
            "import_jobs": result.import_jobs,
            "import_jobs_with_errors": result.import_jobs_with_errors,
            "rows_with_errors": result.rows_with_errors,
            "requests_made": session.stats.requests,
            "dry_run": session.dry_run,
            "preview": dg.MetadataValue.md(_two_column_table(("list", "contacts"), result.list_sizes)),
        }
    )


class LetterPushConfig(dg.Config):
    """Launchpad settings for an operator."""

    release_unknown_letter_keys: list[str] = []
    """Letters in state `unknown` to make sendable again, after checking SendGrid's Email Activity
    (custom arg letter_key) shows they were NOT delivered. A released letter that was delivered is sent twice."""

    contact_policy: ContactPolicy = ContactPolicy()
    """Caps, priorities, validity per letter type and the local send hour (docs/activation.md, "Contact policy")."""


@dg.asset(
    key=SENDGRID_LETTERS,
    deps=[LETTERS_PLANNED, SENDGRID_TEMPLATES],
    group_name="activation",
    kinds=KINDS,
    owners=OWNERS,
)
def sendgrid_letters(
    context: dg.AssetExecutionContext,
    config: LetterPushConfig,
    sendgrid: SendGridResource,
    duckdb: DuckDBResource,
) -> dg.MaterializeResult:
    """Every planned letter handed to SendGrid once, or recorded as suppressed, failed or unknown in the send ledger.

    Never to an address SendGrid suppresses, nor to a customer who unsubscribed, bounced or has no consent.
    """
    session = sendgrid.session(context.run.run_id, log=context.log.warning)
    if not sendgrid.unsubscribe_group_id:
        if not session.dry_run:
            raise dg.Failure(description=NO_UNSUBSCRIBE_GROUP, allow_retries=False)
        context.log.warning(f"dry-run: {NO_UNSUBSCRIBE_GROUP}")
    templates = load_templates(Path(sendgrid.templates_dir))
    with duckdb.get_connection() as connection, sendgrid.thread_pool() as pool:
        ledger.ensure_schema(connection)
        if config.release_unknown_letter_keys:
            released = ledger.release_letters(connection, config.release_unknown_letter_keys)
            context.log.info(f"released {released} unknown letter(s) for sending: operator request")
        try:
            sender = LetterSender(session, sendgrid.sender_email, sendgrid.sender_name, sendgrid.unsubscribe_group_id)
            result = push_letters(
                connection,
                session,
                pool,
                sender,
                lambda: sync_templates(session, templates).template_ids,
                context.run.run_id,
                max_in_flight=max(1, sendgrid.max_concurrent_requests),
                webhook_retry_horizon_seconds=sendgrid.webhook_retry_horizon_seconds,
                letters_per_request=sendgrid.letters_per_request,
                policy=config.contact_policy,
            )
        except SendGridError as error:
            raise _stop_run(error) from None
        totals = ledger.state_counts(connection)
        engagement = engagement_by_letter_type(connection, sorted(templates))
    if any(result.unknown_resolved.values()):
        context.log.info(
            f"unknown letters settled from SendGrid's webhook events: {result.unknown_resolved['accepted']} accepted, "
            f"{result.unknown_resolved['released']} released for sending; see activation.unknown_resolutions"
        )
    if result.interrupted_claims_now_unknown:
        context.log.warning(
            f"{len(result.interrupted_claims_now_unknown)} letter(s) were claimed by a run that stopped mid-send "
            "and are now unknown; SendGrid's webhook events settle them (docs/webhook.md): "
            + ", ".join(result.interrupted_claims_now_unknown[:20])
        )
    metadata = {
        "dagster/row_count": sum(totals.values()),
        "letters_newly_planned": result.newly_planned,
        "letters_sent": result.accepted + result.dry_run,
        "letters_accepted": result.accepted,
        "letters_dry_run": result.dry_run,
        "letters_suppressed": result.suppressed,
        "letters_failed": result.failed,
        "letters_unknown": result.unknown + len(result.interrupted_claims_now_unknown),
        "letters_returned_to_planned": result.returned_to_planned,
        "unknown_resolved_accepted": result.unknown_resolved.get("accepted", 0),
        "unknown_resolved_released": result.unknown_resolved.get("released", 0),
        "letters_deferred_same_inbox_today": result.deferred_same_inbox_today,
        "letters_deferred": result.deferred,
        "letters_expired": result.expired,
        "plan_day": str(result.plan_day),
        "unknown_blast_radius": sendgrid.unknown_blast_radius,
        "mail_send_requests": result.mail_send_requests,
        "requests_made": session.stats.requests,
        "request_retries": session.stats.retries,
        "dry_run": session.dry_run,
        # Every state, 0 when empty, so each one plots as a steady line across runs.
        **{f"ledger_{state}_total": totals.get(state, 0) for state in ledger.ALL_STATES},
        # Per letter type, from SendGrid's webhook events: a steady line per rate across pushes.
        **{
            f"engagement_{letter_type}_{rate}": value
            for letter_type, rates in engagement.items()
            for rate, value in rates.items()
            if rate in RATE_EVENTS
        },
        "engagement": dg.MetadataValue.md(
            markdown_table(
                ["letter type", "accepted", *RATE_EVENTS],
                [(name, rates["accepted"], *(f"{rates[rate]:.1%}" for rate in RATE_EVENTS)) for name, rates in engagement.items()],
            )
        ),
        "preview": dg.MetadataValue.md(
            _two_column_table(("ledger state", "letters"), totals)
            + "\n\n"
            + _two_column_table(("suppression reason (this run)", "letters"), result.suppressed_by_reason or {"-": 0})
            + "\n\n"
            + _two_column_table(("deferral reason (this run)", "letters"), result.deferred_by_reason or {"-": 0})
        ),
    }
    if session.dry_run:
        context.log.info(f"dry-run: no SENDGRID_API_KEY; requests written to {session.outbox_path}")
        metadata["outbox"] = dg.MetadataValue.path(str(session.outbox_path))
    if result.stop_error is not None:
        # Settled letters are already recorded; the ones not sent stay planned for the next run.
        raise _stop_run(result.stop_error)
    return dg.MaterializeResult(metadata=metadata)


@dg.asset_check(asset=SENDGRID_LETTERS, name="no_unknown_or_failed_letters")
def no_unknown_or_failed_letters(duckdb: DuckDBResource) -> dg.AssetCheckResult:
    """Fails (ERROR) while letters need an operator: unknown (maybe delivered, never resent automatically) or failed."""
    with duckdb.get_connection() as connection:
        ledger.ensure_schema(connection)
        unknown = ledger.letters_in_state(connection, "unknown")
        failed = ledger.letters_in_state(connection, "failed")
        requests = ledger.unknown_requests(connection)
    sample = 50
    return dg.AssetCheckResult(
        passed=not unknown and not failed,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "unknown_letters": len(unknown),
            "unknown_requests": len(requests),
            "failed_letters": len(failed),
            "unknown_letter_keys": dg.MetadataValue.json([key for key, _ in unknown[:sample]]),
            "unknown_by_request": dg.MetadataValue.md(
                markdown_table(
                    ["run", "request", "letter type", "letters", "claimed at", "look up this letter key"],
                    [(run, request, template, count, str(claimed), key) for run, request, template, count, claimed, key in requests[:sample]],
                )
            ),
            "failed_letter_keys": dg.MetadataValue.json(
                [{"letter_key": key, "error": error} for key, error in failed[:sample]]
            ),
            "what_to_do": (
                "unknown: SendGrid accepts a Mail Send request whole or not at all, so look up ONE letter key per "
                "request (Email Activity, custom arg letter_key), then `python -m lifecycle_assets.activation "
                "accept --request ID` or `release --request ID` (filters: --run, --letter-type, --older-than-hours); "
                "see docs/activation.md. failed: fix the data or template named in the error."
            ),
        },
    )


activation_assets = [sendgrid_templates, sendgrid_audiences, sendgrid_letters]
activation_checks = [no_unknown_or_failed_letters]

push_to_sendgrid = dg.define_asset_job(
    "push_to_sendgrid",
    # the lift report reads the ledger this push wrote (activation/lift.py)
    selection=dg.AssetSelection.assets(*activation_assets, LETTER_LIFT),
    description="Push audiences and planned letters to SendGrid (dry-run into the outbox without SENDGRID_API_KEY).",
    tags={"lifecycle/push": "sendgrid"},
)
