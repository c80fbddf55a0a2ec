"""Small, contract-shaped marts (and the raw tables the push checks consent in) in a DuckDB file.

Used by the activation tests, the kill-and-rerun subprocess and the push benchmark until the
models produce marts of their own: columns follow docs/data_contract.md section 3.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import duckdb
import pyarrow

TEMPLATES = [
    ("welcome", "welcome_day0"),
    ("abandoned_cart", "abandoned_cart"),
    ("winback", "winback_90"),
    ("birthday", "birthday"),
]
STAGES = ["visitor", "new_buyer", "active", "departing", "returned"]
RECENCY = ["0_90", "90_180", "180_360", "360_plus"]
RFM = ["champions", "loyal", "at_risk", "lost"]


def email_of(customer_number: int) -> str:
    return f"customer{customer_number}@example.com"


def customer_id_of(customer_number: int) -> str:
    return f"C{customer_number:06d}"


def write_sample_marts(
    database: Path,
    *,
    customers: int = 40,
    letters: int | None = None,
    as_of: dt.date = dt.date(2024, 3, 1),
    without_consent: frozenset[int] = frozenset(),
    unsubscribed_in_interactions: frozenset[int] = frozenset(),
    audience_customers: int | None = None,
) -> None:
    """Write raw.customers, raw.interactions, marts.letters_planned and marts.audiences.

    Customer n gets letter n % len(TEMPLATES); `letters` above `customers` cycles through customers
    with a new instance each round so letter keys stay unique.
    """
    letters = customers if letters is None else letters
    audience_customers = customers if audience_customers is None else audience_customers
    connection = duckdb.connect(str(database))
    try:
        connection.execute("create schema if not exists raw; create schema if not exists marts")
        customer_table = pyarrow.table(
            {
                "customer_id": [customer_id_of(n) for n in range(customers)],
                "email": [email_of(n) for n in range(customers)],
                "first_name": [f"Name{n}" if n % 3 else None for n in range(customers)],
                "registered_at": [dt.datetime(2024, 1, 1) for _ in range(customers)],
                "marketing_consent": [n not in without_consent for n in range(customers)],
                "_landing_date": [as_of for _ in range(customers)],
                "_row_number": list(range(1, customers + 1)),
                # The rest of the contract's columns (docs/data_contract.md section 2), empty.
                "birthday": pyarrow.nulls(customers, pyarrow.date32()),
                "timezone": pyarrow.nulls(customers, pyarrow.string()),
                "updated_at": pyarrow.nulls(customers, pyarrow.timestamp("us")),
                "_source_file": [f"customers/date={as_of.isoformat()}/customers.csv" for _ in range(customers)],
            }
        )
        connection.execute("create or replace table raw.customers as select * from customer_table")
        unsubscribed = sorted(unsubscribed_in_interactions)
        interactions = pyarrow.table(
            {
                "event_id": [f"E{n}" for n in unsubscribed],
                "occurred_at": [dt.datetime(2024, 2, 1) for _ in unsubscribed],
                "event_type": ["unsubscribe" for _ in unsubscribed],
                "customer_id": [customer_id_of(n) for n in unsubscribed],
            },
            schema=pyarrow.schema(
                [("event_id", pyarrow.string()), ("occurred_at", pyarrow.timestamp("us")),
                 ("event_type", pyarrow.string()), ("customer_id", pyarrow.string())]
            ),
        )
        connection.execute("create or replace table raw.interactions as select * from interactions")
        rows = {key: [] for key in ("letter_key", "customer_id", "email", "first_name", "trigger", "template_name",
                                    "priority", "fired_at", "as_of", "personalisation")}
        for index in range(letters):
            number = index % customers
            instance = index // customers
            template_name, trigger = TEMPLATES[number % len(TEMPLATES)]
            first_name = f"Name{number}" if number % 3 else None
            rows["letter_key"].append(f"{trigger}:{customer_id_of(number)}:{as_of.isoformat()}#{instance}")
            rows["customer_id"].append(customer_id_of(number))
            rows["email"].append(email_of(number))
            rows["first_name"].append(first_name)
            rows["trigger"].append(trigger)
            rows["template_name"].append(template_name)
            rows["priority"].append(1 + number % 3)
            rows["fired_at"].append(dt.datetime.combine(as_of, dt.time(9)))
            rows["as_of"].append(as_of)
            rows["personalisation"].append(
                json.dumps(
                    {
                        "first_name": first_name,
                        "bonus_amount": 10.0 if template_name in ("welcome", "winback", "birthday") else None,
                        "bonus_expires_on": (as_of + dt.timedelta(days=7)).isoformat(),
                        "products": [{"product_id": f"P{number % 7}", "name": f"Product {number % 7}"}],
                        "recommendations": [{"product_id": "P9", "name": "Product 9"}],
                        "stage": STAGES[number % len(STAGES)],
                        "trigger": trigger,
                    }
                )
            )
        letters_table = pyarrow.table(rows)
        connection.execute(
            """create or replace table marts.letters_planned as
               select letter_key, customer_id, email, first_name, trigger, template_name,
                      priority::integer as priority, fired_at, as_of, personalisation,
                      as_of as due_on, null::date as deliver_on from letters_table"""
        )
        write_audiences(connection, range(audience_customers), as_of)
    finally:
        connection.close()


def write_audiences(connection, customer_numbers, as_of: dt.date, stage_shift: int = 0) -> None:
    """marts.audiences for the given customers: a stage list, a recency list, an RFM list and the newsletter."""
    rows = {key: [] for key in ("customer_id", "email", "first_name", "list_name", "list_kind", "stage",
                                "recency_segment", "rfm_segment", "expected_next_purchase_on",
                                "last_purchase_on", "orders_count")}
    for number in customer_numbers:
        stage = STAGES[(number + stage_shift) % len(STAGES)]
        recency = None if stage == "visitor" else RECENCY[number % len(RECENCY)]
        rfm = None if stage == "visitor" else RFM[number % len(RFM)]
        lists = [(f"stage_{stage}", "stage"), ("newsletter", "newsletter")]
        if recency:
            lists += [(f"recency_{recency}", "recency"), (f"rfm_{rfm}", "rfm")]
        for list_name, list_kind in lists:
            rows["customer_id"].append(customer_id_of(number))
            rows["email"].append(email_of(number))
            rows["first_name"].append(f"Name{number}" if number % 3 else None)
            rows["list_name"].append(list_name)
            rows["list_kind"].append(list_kind)
            rows["stage"].append(stage)
            rows["recency_segment"].append(recency)
            rows["rfm_segment"].append(rfm)
            rows["expected_next_purchase_on"].append(None if stage == "visitor" else as_of + dt.timedelta(days=30))
            rows["last_purchase_on"].append(None if stage == "visitor" else as_of - dt.timedelta(days=number % 400))
            rows["orders_count"].append(0 if stage == "visitor" else 1 + number % 6)
    audience_rows = pyarrow.table(
        rows,
        schema=pyarrow.schema(
            [("customer_id", pyarrow.string()), ("email", pyarrow.string()), ("first_name", pyarrow.string()),
             ("list_name", pyarrow.string()), ("list_kind", pyarrow.string()), ("stage", pyarrow.string()),
             ("recency_segment", pyarrow.string()), ("rfm_segment", pyarrow.string()),
             ("expected_next_purchase_on", pyarrow.date32()), ("last_purchase_on", pyarrow.date32()),
             ("orders_count", pyarrow.int64())]
        ),
    )
    connection.execute("create or replace table marts.audiences as select * from audience_rows")


def write_plan(connection, as_of: dt.date, letters: list[dict]) -> None:
    """Replace marts.letters_planned with these letters of one plan day.

    Each letter: customer (number), template, priority; optional trigger, instance, due_on,
    deliver_on. The letter key follows the mart's trigger:customer:instance.
    """
    rows = {key: [] for key in ("letter_key", "customer_id", "email", "first_name", "trigger", "template_name",
                                "priority", "fired_at", "as_of", "personalisation", "due_on", "deliver_on")}
    for letter in letters:
        number, template_name = letter["customer"], letter["template"]
        trigger = letter.get("trigger", template_name)
        due_on = letter.get("due_on", as_of)
        rows["letter_key"].append(f"{trigger}:{customer_id_of(number)}:{letter.get('instance', due_on.isoformat())}")
        rows["customer_id"].append(customer_id_of(number))
        rows["email"].append(email_of(number))
        rows["first_name"].append(f"Name{number}")
        rows["trigger"].append(trigger)
        rows["template_name"].append(template_name)
        rows["priority"].append(letter["priority"])
        rows["fired_at"].append(dt.datetime.combine(due_on, dt.time(9)))
        rows["as_of"].append(as_of)
        rows["personalisation"].append(json.dumps({
            "first_name": f"Name{number}", "bonus_amount": 10.0, "bonus_expires_on": (as_of + dt.timedelta(days=7)).isoformat(),
            "products": [{"product_id": "P1", "name": "Product 1"}], "recommendations": [], "stage": "active",
            "trigger": trigger,
        }))
        rows["due_on"].append(due_on)
        rows["deliver_on"].append(letter.get("deliver_on"))
    plan = pyarrow.table(rows, schema=pyarrow.schema(
        [(name, pyarrow.string()) for name in ("letter_key", "customer_id", "email", "first_name", "trigger", "template_name")]
        + [("priority", pyarrow.int32()), ("fired_at", pyarrow.timestamp("us")), ("as_of", pyarrow.date32()),
           ("personalisation", pyarrow.string()), ("due_on", pyarrow.date32()), ("deliver_on", pyarrow.date32())]
    ))
    connection.execute("create or replace table marts.letters_planned as select * from plan")
