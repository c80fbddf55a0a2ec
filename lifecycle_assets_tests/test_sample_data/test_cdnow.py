"""CDNOW lands as the contract says: every purchase line one order, every customer once, 1997-1998."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl
import pytest

from lifecycle_assets.sample_data.cdnow import CdnowFormatError, convert_cdnow, default_source, main
from lifecycle_assets_tests.test_sample_data.test_sample_shop import quarantine, read_entity


@pytest.fixture(scope="module")
def cdnow(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("cdnow") / "landing"
    return root, convert_cdnow(root)


def test_every_purchase_line_is_one_order_of_one_of_23570_customers(cdnow):
    root, summary = cdnow
    assert summary["rows"] == {"customers": 23_570, "products": 1, "orders": 69_659, "order_items": 69_659}
    customers, orders = read_entity(root, "customers"), read_entity(root, "orders")
    assert customers["customer_id"].n_unique() == 23_570
    assert orders["order_id"].n_unique() == 69_659
    assert set(orders["customer_id"]) == set(customers["customer_id"])
    source_lines = default_source().read_text(encoding="ascii").splitlines()[1:]  # below the header line
    free_orders = sum(1 for line in source_lines if float(line.split()[-1]) == 0)
    assert free_orders > 0
    assert summary["zero_value_orders"] == free_orders
    assert (orders["total_amount"] == "0.00").sum() == free_orders


def test_landing_days_are_the_purchase_days_in_1997_and_1998(cdnow):
    root, summary = cdnow
    assert (summary["first_day"], summary["last_day"]) == ("1997-01-01", "1998-06-30")
    for entity in ("customers", "products", "orders", "order_items"):
        days = read_entity(root, entity)["landing_day"]
        assert days.min() >= date(1997, 1, 1) and days.max() <= date(1998, 12, 31), entity
    orders = read_entity(root, "orders")
    assert (orders["ordered_at"].str.slice(0, 10).str.to_date() == orders["landing_day"]).all()
    # A customer lands on the day of their first purchase.
    first_purchase = orders.group_by("customer_id").agg(first=pl.col("landing_day").min())
    customers = read_entity(root, "customers").join(first_purchase, on="customer_id")
    assert (customers["landing_day"] == customers["first"]).all()


def test_source_values_survive_the_conversion(cdnow):
    root, _ = cdnow
    source_lines = default_source().read_text(encoding="ascii").splitlines()[1:]
    dollars = sum(float(line.split()[-1]) for line in source_lines)
    cds = sum(int(line.split()[2]) for line in source_lines)
    orders = read_entity(root, "orders")
    assert orders["total_amount"].cast(pl.Float64).sum() == pytest.approx(dollars, abs=0.01)
    assert read_entity(root, "order_items")["quantity"].cast(pl.Int64).sum() == cds
    items = read_entity(root, "order_items").join(orders, on="order_id")
    implied = items["quantity"].cast(pl.Int64) * items["unit_price"].cast(pl.Float64)
    # unit_price is rounded to cents: the line total is off by at most half a cent per CD.
    assert ((implied - items["total_amount"].cast(pl.Float64)).abs() <= items["quantity"].cast(pl.Int64) * 0.005 + 1e-9).all()


def test_converted_files_pass_the_row_rules(cdnow):
    root, summary = cdnow
    first = date.fromisoformat(summary["first_day"])
    days = (date.fromisoformat(summary["last_day"]) - first).days + 1
    quarantined, rejected_files = quarantine(root, first, days)
    assert rejected_files == []
    assert quarantined.height == 0, quarantined.head(5)


def test_a_malformed_source_line_is_an_error_naming_the_line(tmp_path):
    source = tmp_path / "CDNOW_master.txt"
    source.write_text(" 00001 19970101  1   11.77\n 00002 1997-01-12  1   12.00\n", encoding="ascii")
    with pytest.raises(CdnowFormatError, match="line 2"):
        convert_cdnow(tmp_path / "landing", source)
    assert not (tmp_path / "landing").exists()


def test_command_line(tmp_path, capsys):
    source = tmp_path / "small.txt"
    source.write_text(" 00001 19970101  1   11.77\n 00001 19970301  2   0.00\n", encoding="ascii")
    main(["--landing", str(tmp_path / "landing"), "--source", str(source)])
    assert "1 orders with a dollar value of 0.00" in capsys.readouterr().out
    assert len(list((tmp_path / "landing" / "orders").iterdir())) == 2
