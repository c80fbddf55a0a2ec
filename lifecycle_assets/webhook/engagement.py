"""Engagement per letter type from SendGrid's webhook events: what the UI plots beside the ledger totals.

A rate is the share of letters SendGrid accepted (ledger state `accepted`) that have at least one
event of that kind, by the letter key the events carry. Counting letters, not events, keeps a
letter opened five times at one open. Every letter type is listed, 0 when it has no letter yet,
so each rate plots as a steady line across pushes.
"""

from __future__ import annotations

# rate name -> the contract's event types that count for it
RATE_EVENTS: dict[str, tuple[str, ...]] = {
    "delivery_rate": ("delivered",),
    "open_rate": ("open",),
    "click_rate": ("click",),
    "bounce_rate": ("bounce",),
    "unsubscribe_rate": ("unsubscribe", "group_unsubscribe"),
}


def engagement_by_letter_type(connection, letter_types: list[str]) -> dict[str, dict[str, float]]:
    """letter type -> {accepted: n, delivery_rate: 0..1, open_rate, click_rate, bounce_rate, unsubscribe_rate}."""
    result = {name: {"accepted": 0, **dict.fromkeys(RATE_EVENTS, 0.0)} for name in letter_types}
    columns = {row[0] for row in connection.execute(
        "select column_name from information_schema.columns where table_schema = 'raw' and table_name = 'interactions'"
    ).fetchall()}
    has_events = {"letter_key", "event_type"} <= columns
    rate_columns = ", ".join(
        f"count(distinct case when events.event_type in ({', '.join(repr(t) for t in types)}) "
        f"then ledger.letter_key end) as {name}"
        for name, types in RATE_EVENTS.items()
    )
    events_join = (
        "left join raw.interactions as events on events.letter_key = ledger.letter_key"
        if has_events
        else "left join (select null::varchar as letter_key, null::varchar as event_type) as events on false"
    )
    rows = connection.execute(
        f"""select ledger.template_name, count(distinct ledger.letter_key) as accepted, {rate_columns}
            from activation.send_ledger as ledger {events_join}
            where ledger.state = 'accepted'
            group by ledger.template_name"""
    ).fetchall()
    for template_name, accepted, *counts in rows:
        entry = result.setdefault(template_name, {"accepted": 0, **dict.fromkeys(RATE_EVENTS, 0.0)})
        entry["accepted"] = accepted
        for name, count in zip(RATE_EVENTS, counts):
            entry[name] = round(count / accepted, 4) if accepted else 0.0
    return result
