"""One person, one inbox: addresses matched trimmed and case-folded, every protection per address."""

from __future__ import annotations

import duckdb

from lifecycle_assets_tests.test_models.conftest import build  # noqa: F401 - the model-building fixture
from lifecycle_assets_tests.test_models.tiny_shop import TinyShop, at

from .conftest import ledger_rows, push, sendgrid_for
from .sample_marts import customer_id_of, email_of, write_sample_marts

SPELLINGS = ("Foo@X.com", "foo@x.com", " FOO@X.COM ")


def shop_with_one_inbox_three_customers() -> TinyShop:
    shop = TinyShop().product("p1").product("p2")
    for number, spelling in enumerate(SPELLINGS):
        shop.customer(f"c{number}", at(0, 9 + number))
        shop.rows["customers"][-1]["email"] = spelling
    return shop


def test_three_spellings_of_one_address_get_one_welcome_letter(build):  # noqa: F811
    letters = build(shop_with_one_inbox_three_customers(), as_of=0).letters()

    assert [(letter["email"], letter["trigger"]) for letter in letters.values()] == [("foo@x.com", "welcome_day0")]


def test_an_unsubscribe_by_one_customer_protects_every_customer_at_the_address(build):  # noqa: F811
    shop = shop_with_one_inbox_three_customers().event("unsubscribe", "c1", at(0, 20))

    built = build(shop, as_of=0)

    assert built.letters() == {}
    reasons = dict(built.connection.execute(
        "select customer_id, not_receiving_reason from intermediate.letter_recipients"
    ).fetchall())
    assert reasons == {"c0": "address_interaction_unsubscribe", "c1": "interaction_unsubscribe", "c2": "address_interaction_unsubscribe"}


def test_replenishment_items_due_the_same_day_become_one_letter(build):  # noqa: F811
    shop = TinyShop().product("coffee", rebuy_interval_days=30).product("tea", rebuy_interval_days=30)
    shop.customer("ann", at(0)).order("o1", "ann", at(0), [("coffee", 1), ("tea", 1)])

    letters = build(shop, as_of=30).letters("ann")

    replenishment = [letter for letter in letters.values() if letter["trigger"] == "replenishment"]
    assert len(replenishment) == 1
    assert [p["product_id"] for p in replenishment[0]["personalisation"]["products"]] == ["coffee", "tea"]


def test_the_letter_goes_to_the_address_current_at_send_time(fake, tmp_path):
    warehouse = tmp_path / "warehouse.duckdb"
    write_sample_marts(warehouse, customers=8)
    with duckdb.connect(str(warehouse)) as connection:
        # After the plan was built, customer 3 changed address (a later customers row).
        connection.execute(
            """insert into raw.customers by name
               select customer_id, 'New.Address3@Example.com ' as email, first_name, registered_at, marketing_consent,
                      _landing_date + 1 as _landing_date, _row_number, _source_file from raw.customers where customer_id = ?""",
            [customer_id_of(3)],
        )

    push(warehouse, sendgrid_for(fake))

    to_customer_3 = [m["to"] for m in fake.sent_messages() if m["custom_args"]["customer_id"] == customer_id_of(3)]
    assert to_customer_3 == ["new.address3@example.com"]


def test_two_customers_at_one_address_get_one_letter_of_a_type_a_day_and_a_request_never_repeats_an_address(fake, tmp_path):
    warehouse = tmp_path / "warehouse.duckdb"
    # 40 customers; customer n gets letter type n % 4, so customers 4 and 8 share a type with 0.
    write_sample_marts(warehouse, customers=40)
    with duckdb.connect(str(warehouse)) as connection:
        for number, spelling in ((4, email_of(0).upper()), (8, f"  {email_of(0)}")):
            connection.execute("update raw.customers set email = ? where customer_id = ?", [spelling, customer_id_of(number)])
            connection.execute("update marts.letters_planned set email = ? where customer_id = ?", [spelling, customer_id_of(number)])

    result = push(warehouse, sendgrid_for(fake))
    push(warehouse, sendgrid_for(fake))  # the same day again: still one

    to_inbox = [m for m in fake.sent_messages() if m["to"] == email_of(0)]
    assert len(to_inbox) == 1
    for request_index in {m["request_index"] for m in fake.sent_messages()}:
        addresses = [m["to"] for m in fake.sent_messages() if m["request_index"] == request_index]
        assert len(addresses) == len(set(addresses))
    states = ledger_rows(warehouse)
    waiting = [key for key, row in states.items() if row[0] == "deferred"]
    assert len(waiting) == 2, "the other two letters wait for another day, not lost and not failed"
    assert all(check.passed for check in result.get_asset_check_evaluations())
