"""The sample shop: reproducible, contract-conform landing files whose figures match the lifecycle brief,
and a dirty mode whose manifest says exactly what the quarantine will find."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import date, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest

from lifecycle_assets.ingest.contract import ENTITIES, LANDING_FORMATS, WEBHOOK_ONLY_EVENT_TYPES
from lifecycle_assets.ingest.pipeline import configure, ingest_days
from lifecycle_assets.sample_data.sample_shop import MANIFEST_NAME, generate_sample_shop, main
from lifecycle_assets.sample_data.simulation import BOUGHT_TOGETHER_SHARE, PRODUCT_COUNT, bought_together

CONTRACT_DOC = Path(__file__).resolve().parents[2] / "docs" / "data_contract.md"
INGEST_ORDER = ("customers", "products", "orders", "order_items", "interactions")


def fingerprint(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def read_entity(root: Path, entity: str) -> pl.DataFrame:
    """Every row of an entity as text, with its landing day, read directly from the files."""
    frames = []
    for path in sorted((root / entity).glob("date=*/*")):
        if path.suffix == ".csv":
            frame = pl.read_csv(path, infer_schema=False)
        elif path.suffix == ".parquet":
            frame = pl.read_parquet(path)
        else:
            frame = pl.read_ndjson(path, infer_schema_length=None)
        frames.append(frame.select(pl.all().cast(pl.String)).with_columns(landing_day=pl.lit(path.parent.name[5:]).str.to_date()))
    return pl.concat(frames, how="diagonal_relaxed")


def quarantine(root: Path, first_day: date, days: int) -> tuple[pl.DataFrame, list[tuple[str, str]]]:
    """Run the project's own ingest (DuckDB readers and row rules) over every landing day, in memory."""
    window = [first_day + timedelta(days=offset) for offset in range(days)]
    rejected_files = []
    with duckdb.connect() as con:
        configure(con)
        for name in INGEST_ORDER:
            outcome = ingest_days(con, root, ENTITIES[name], window, run_id="test")
            rejected_files += [(f.source_file, f.reason) for f in outcome.rejected_files]
        quarantined = con.execute(
            "SELECT entity, landing_date, source_file, row_number, reason, raw_row FROM quality.quarantined_rows"
        ).pl()
    return quarantined, rejected_files


# --- Reproducibility and layout ------------------------------------------------------------------


def test_same_seed_writes_identical_files_and_another_seed_does_not(tmp_path):
    # Three chunks of customers: the same seed gives the same files across chunks as well.
    arguments = dict(customers=800, days=21, end_day="2024-06-30", dirty=True, chunk_customers=300)
    generate_sample_shop(tmp_path / "a", seed=3, **arguments)
    generate_sample_shop(tmp_path / "b", seed=3, **arguments)
    generate_sample_shop(tmp_path / "c", seed=4, **arguments)
    first, again, other = (fingerprint(tmp_path / x) for x in "abc")
    assert len(first) > 50
    assert first == again
    changed = [path for path, digest in first.items() if other.get(path) != digest]
    assert len(changed) > len(first) / 2


def test_writing_on_several_cores_writes_the_same_files_as_on_one(tmp_path):
    # Over 50,000 customers the days are written in two buckets, here by two threads at once: the
    # order and event ids that run across the whole shop must still follow time from the first day.
    arguments = dict(customers=55_000, days=6, end_day="2024-06-30", seed=5)
    generate_sample_shop(tmp_path / "one", workers=1, **arguments)
    generate_sample_shop(tmp_path / "two", workers=2, **arguments)
    assert fingerprint(tmp_path / "one") == fingerprint(tmp_path / "two")
    events = read_entity(tmp_path / "two", "interactions").sort("landing_day", "occurred_at")
    orders = read_entity(tmp_path / "two", "orders").filter(pl.col("status") != "refunded")
    assert events["event_id"].n_unique() == events.height
    assert orders["order_id"].n_unique() == orders.height
    assert events["landing_day"].n_unique() == 6


@pytest.fixture(scope="module")
def shop_20k(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("shop") / "landing"
    # Simulated in four chunks, so the figures below hold for a shop written chunk by chunk.
    summary = generate_sample_shop(root, customers=20_000, days=365, end_day="2024-12-31", seed=7, chunk_customers=5_000)
    return root, summary


def test_landing_layout_follows_the_contract(shop_20k):
    root, summary = shop_20k
    assert sorted(p.name for p in root.iterdir()) == sorted([*ENTITIES, MANIFEST_NAME])
    first, last = date.fromisoformat(summary["first_day"]), date.fromisoformat(summary["last_day"])
    assert (first, last) == (date(2024, 1, 2), date(2024, 12, 31))
    formats: dict[str, set[str]] = {name: set() for name in ENTITIES}
    files = 0
    for name, entity in ENTITIES.items():
        for folder in (root / name).iterdir():
            match = re.fullmatch(r"date=(\d{4}-\d{2}-\d{2})", folder.name)
            assert match, folder
            assert first <= date.fromisoformat(match.group(1)) <= last
            for path in folder.iterdir():
                files += 1
                formats[name].add(path.suffix.lstrip("."))
                if path.suffix == ".csv":
                    columns = pl.read_csv(path, n_rows=1, infer_schema=False).columns
                elif path.suffix == ".parquet":
                    columns = pl.read_parquet_schema(path).keys()
                else:
                    columns = json.loads(path.open(encoding="utf-8").readline()).keys()
                assert set(entity.required_columns) <= set(columns), path
    assert files == summary["files"]
    assert formats["products"] == {"csv"}
    for name in ("customers", "orders", "order_items", "interactions"):
        assert formats[name] == set(LANDING_FORMATS), name
    # Products land on the first day; every other day has customers, orders and interactions.
    assert [p.name for p in (root / "products").iterdir()] == [f"date={first}"]
    assert len(list((root / "interactions").iterdir())) == 365


def test_rows_land_on_the_day_they_happened(shop_20k):
    root, _ = shop_20k
    for entity, column in (("customers", "registered_at"), ("orders", "ordered_at"), ("interactions", "occurred_at")):
        rows = read_entity(root, entity)
        happened = rows[column].str.slice(0, 10).str.to_date()
        if entity == "interactions":
            assert (happened == rows["landing_day"]).all()
        else:
            # A later landing day of the same id is an update (refund, consent withdrawn).
            originals = rows.filter(happened == pl.col("landing_day"))
            updates = rows.filter(happened != pl.col("landing_day"))
            assert (updates["landing_day"] > updates[column].str.slice(0, 10).str.to_date()).all()
            key = ENTITIES[entity].key[0]
            assert originals[key].is_unique().all()
            assert updates[key].is_in(originals[key].implode()).all()


def test_order_totals_add_up_and_refunds_arrive_later(shop_20k):
    root, _ = shop_20k
    items = read_entity(root, "order_items").group_by("order_id").agg(
        total=(pl.col("quantity").cast(pl.Int64) * pl.col("unit_price").cast(pl.Float64)).sum()
    )
    orders = read_entity(root, "orders")
    first_landing = orders.sort("landing_day").unique("order_id", keep="first")
    joined = first_landing.join(items, on="order_id", how="left")
    assert joined["total"].null_count() == 0
    assert ((joined["total_amount"].cast(pl.Float64) - joined["total"]).abs() < 0.005).all()
    statuses = first_landing["status"].value_counts().sort("status")
    assert set(statuses["status"]) == {"completed", "cancelled"}
    refunds = orders.filter(pl.col("status") == "refunded")
    assert refunds.height > 0
    assert refunds.join(first_landing, on="order_id").filter(pl.col("landing_day") <= pl.col("landing_day_right")).height == 0


def test_repeat_orders_add_companions_of_the_favourite(shop_20k):
    root, _ = shop_20k
    pairs = bought_together()
    assert pairs.height == 600 and pairs.filter(pl.col("product_id") == pl.col("companion_id")).is_empty()
    orders = read_entity(root, "orders").unique("order_id").select("order_id", "customer_id", "ordered_at")
    items = read_entity(root, "order_items").unique(["order_id", "line_number"]).with_columns(pl.col("line_number").cast(pl.Int64))
    items = items.join(orders, on="order_id").with_columns(
        first_order=pl.col("ordered_at") == pl.col("ordered_at").min().over("customer_id")
    )
    # The favourite is the first line of the customer's first order.
    favourite = items.filter(pl.col("first_order") & (pl.col("line_number") == 1)).select("customer_id", favourite="product_id")
    later = items.filter(pl.col("line_number") >= 2).join(favourite, on="customer_id")

    def companion_share(lines: pl.DataFrame) -> float:
        declared = lines.join(pairs, left_on=["favourite", "product_id"], right_on=["product_id", "companion_id"], how="semi")
        return declared.height / lines.height

    # By chance a line holds one of the favourite's 3 companions among 200 products about 1.5% of the
    # time; a repeat order puts one there in BOUGHT_TOGETHER_SHARE of its later lines, a first order never.
    chance = 3 / (PRODUCT_COUNT - 1)
    repeat_share = companion_share(later.filter(~pl.col("first_order")))
    assert repeat_share > 10 * chance
    assert repeat_share == pytest.approx(BOUGHT_TOGETHER_SHARE + chance, abs=0.04)
    assert companion_share(later.filter(pl.col("first_order"))) < 3 * chance


def test_interactions_cover_site_and_email_events(shop_20k):
    root, _ = shop_20k
    events = read_entity(root, "interactions")
    counts = dict(events["event_type"].value_counts().iter_rows())
    assert set(counts) == set(ENTITIES["interactions"].columns[2].allowed) - set(WEBHOOK_ONLY_EVENT_TYPES)
    assert counts["spam_report"] < counts["unsubscribe"] < counts["open"] < counts["delivered"]
    anonymous = events.filter(pl.col("customer_id").is_null())
    assert anonymous.height > 0 and anonymous["anonymous_id"].null_count() == 0
    letters = events.filter(pl.col("letter_key").is_not_null())["letter_key"]
    assert letters.str.contains(r"^(welcome_day0|post_purchase|winback_90):C\d{6,}:\d{4}-\d{2}-\d{2}$").all()
    # Abandoned carts: carted by a customer on a day without an order of theirs.
    orders = read_entity(root, "orders").select("customer_id", "landing_day").unique()
    carts = events.filter(pl.col("event_type") == "add_to_cart", pl.col("customer_id").is_not_null())
    abandoned = carts.join(orders, on=["customer_id", "landing_day"], how="anti")
    assert 0 < abandoned.height < carts.height


def test_clean_sample_passes_the_row_rules_and_file_checks(tmp_path):
    summary = generate_sample_shop(tmp_path, customers=2_000, days=45, end_day="2024-03-31", seed=11)
    quarantined, rejected_files = quarantine(tmp_path, date.fromisoformat(summary["first_day"]), 45)
    assert rejected_files == []
    assert quarantined.height == 0, quarantined.head(5)


# --- The figures of the lifecycle brief ------------------------------------------------------------


def brief_figures(root: Path) -> dict[str, float]:
    """Read the brief's figures back from the landing files: a purchase is an order not cancelled."""
    customers = read_entity(root, "customers").filter(
        pl.col("registered_at").str.slice(0, 10).str.to_date() == pl.col("landing_day")
    ).select("customer_id", registered=pl.col("registered_at").str.slice(0, 10).str.to_date())
    orders = read_entity(root, "orders").sort("landing_day").unique("order_id", keep="last")
    lines = read_entity(root, "order_items").group_by("order_id").len("lines")
    purchases = (
        orders.filter(pl.col("status") != "cancelled")
        .select("order_id", "customer_id", day=pl.col("ordered_at").str.slice(0, 10).str.to_date(), at="ordered_at")
        .join(lines, on="order_id")
        .sort("customer_id", "at")
        .with_columns(next_day=pl.col("day").shift(-1).over("customer_id"), previous_day=pl.col("day").shift(1).over("customer_id"))
    )
    buyers = purchases.group_by("customer_id").agg(
        first=pl.col("day").first(), purchases=pl.len(), first_lines=pl.col("lines").first()
    ).join(customers, on="customer_id")
    delay = (buyers["first"] - buyers["registered"]).dt.total_days()
    repeat = buyers["purchases"] > 1
    one_line = buyers["first_lines"] == 1
    six_lines = buyers["first_lines"] >= 6
    # 4-6 months lapsed as of three months before the end; did they buy in those three months?
    as_of = purchases["day"].max() - timedelta(days=90)
    last_before = purchases.filter(pl.col("day") <= as_of).group_by("customer_id").agg(last=pl.col("day").max())
    lapsed = last_before.filter((pl.lit(as_of) - pl.col("last")).dt.total_days().is_between(120, 182))
    came_back = purchases.filter(pl.col("day") > as_of, pl.col("day") <= as_of + timedelta(days=90))
    firsts = purchases.filter(pl.col("previous_day").is_null())
    return {
        "same_day_first_purchase": float((delay == 0).mean()),
        "first_week_first_purchase": float((delay <= 6).mean()),
        "one_time_buyers": float((~repeat).mean()),
        "repeat_6_lines_vs_1_line": float(repeat.filter(six_lines).mean() / repeat.filter(one_line).mean()),
        "lapsed_4_6_months_back_within_3": lapsed.join(came_back, on="customer_id", how="semi").height / lapsed.height,
        "new_buyers_going_on": float(firsts["next_day"].is_not_null().mean()),
    }


@pytest.fixture(scope="module")
def figures(shop_20k) -> dict[str, float]:
    return brief_figures(shop_20k[0])


@pytest.mark.parametrize(
    "figure, low, high",
    [
        pytest.param("same_day_first_purchase", 0.77, 0.83, id="80% of first purchases on the registration day"),
        pytest.param("first_week_first_purchase", 0.84, 0.90, id="87% within the first week"),
        pytest.param("one_time_buyers", 0.50, 0.70, id="more than half never buy twice"),
        pytest.param("repeat_6_lines_vs_1_line", 1.7, 2.3, id="6+ item first orders repeat twice as often"),
        pytest.param("lapsed_4_6_months_back_within_3", 0.17, 0.23, id="20% of the 4-6-month lapsed return"),
        pytest.param("new_buyers_going_on", 0.33, 0.39, id="36% of new buyers go on"),
    ],
)
def test_brief_figures_read_back_from_the_files(figures, figure, low, high):
    assert low <= figures[figure] <= high, figures


# --- Dirty mode --------------------------------------------------------------------------------------


def contract_reasons() -> tuple[list[str], list[str]]:
    """The row-level and file-level reason families listed in docs/data_contract.md."""
    text = CONTRACT_DOC.read_text(encoding="utf-8")
    row_section = text.split("### Row-level rejections")[1].split("### File-level rejections")[0]
    file_section = text.split("### File-level rejections")[1].split("## 2.")[0]
    row_reasons = [r.split(":")[0] for r in re.findall(r"`([a-z_]+(?::<column>)?)`", row_section)]
    file_reasons = [r.split(":")[0] for r in re.findall(r"`([a-z_8]+(?::<a,b>)?)`", file_section)]
    return row_reasons, file_reasons


@pytest.fixture(scope="module")
def dirty_shop(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("dirty") / "landing"
    summary = generate_sample_shop(root, customers=3_000, days=60, end_day="2024-03-31", seed=5, dirty=True)
    return root, summary


def test_dirty_manifest_lists_every_contract_reason(dirty_shop):
    root, summary = dirty_shop
    manifest = json.loads((root / MANIFEST_NAME).read_text(encoding="utf-8"))
    assert manifest["injected"]["rows"] == summary["injected"]["rows"]
    row_reasons, file_reasons = contract_reasons()
    assert len(row_reasons) == 14 and len(file_reasons) == 5
    injected_families = {reason.split(":")[0] for reason in manifest["injected"]["rows"]}
    assert injected_families == set(row_reasons)
    assert {reason.split(":")[0] for reason in manifest["injected"]["files"]} == set(file_reasons)
    bad_rows = sum(sum(per_entity.values()) for per_entity in manifest["injected"]["rows"].values())
    assert bad_rows == len(manifest["injected"]["row_locations"])
    assert bad_rows < 0.01 * sum(manifest["rows"].values())


def test_dirty_files_really_are_bad(dirty_shop):
    root, summary = dirty_shop
    files = summary["injected"]["files"]
    for relative in files["not_utf8"]:
        with pytest.raises(UnicodeDecodeError):
            (root / relative).read_bytes().decode("utf-8")
    for relative in files["empty"]:
        text = (root / relative).read_text(encoding="utf-8")
        assert len(text.strip().splitlines()) <= 1  # nothing, or a header alone
    for relative in files["unreadable"]:
        path = root / relative
        with pytest.raises(Exception):
            pl.read_parquet(path) if path.suffix == ".parquet" else pl.read_ndjson(path)
    for reason, paths in files.items():
        if reason.startswith("missing_columns:"):
            missing = reason.split(":")[1].split(",")
            for relative in paths:
                header = (root / relative).read_text(encoding="utf-8").splitlines()[0].split(",")
                assert not set(missing) & set(header)
    for relative in files["unsupported_format"]:
        assert Path(relative).suffix.lstrip(".") not in LANDING_FORMATS


def test_quarantine_finds_exactly_what_was_injected(dirty_shop):
    root, summary = dirty_shop
    quarantined, rejected_files = quarantine(root, date.fromisoformat(summary["first_day"]), 60)
    found = {(r, e): n for e, r, n in quarantined.group_by("entity", "reason").len().iter_rows()}
    injected = {(r, e): n for r, per_entity in summary["injected"]["rows"].items() for e, n in per_entity.items()}
    assert found == injected
    located = {(x["file"], x["row_number"], x["reason"]) for x in summary["injected"]["row_locations"]}
    assert set(quarantined.select("source_file", "row_number", "reason").iter_rows()) == located
    rejected = {(path, reason.split(" ")[0]) for path, reason in rejected_files}
    listed = {(path, reason) for reason, paths in summary["injected"]["files"].items() for path in paths}
    assert rejected == listed


def stored(root: Path, first_day: date, days: int, slice_bytes: int) -> dict[str, list[tuple]]:
    """Every raw row (less _ingested_at), quarantined row and quarantined file after the ingest of the range."""
    window = [first_day + timedelta(days=offset) for offset in range(days)]
    with duckdb.connect() as con:
        configure(con)
        for name in INGEST_ORDER:
            ingest_days(con, root, ENTITIES[name], window, run_id="test", slice_bytes=slice_bytes)
        tables = [f"raw.{name}" for name in INGEST_ORDER] + ["quality.quarantined_rows", "quality.quarantined_files"]
        kept = {table: con.execute(f"SELECT * EXCLUDE (_ingested_at) FROM {table} ORDER BY ALL").fetchall()
                for table in tables[:5]}
        for table in tables[5:]:
            kept[table] = con.execute(f"SELECT * EXCLUDE (quarantined_at) FROM {table} ORDER BY ALL").fetchall()
        assert not con.execute("SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'incoming'").fetchone()[0]
    return kept


def test_a_range_read_a_day_at_a_time_stores_and_quarantines_the_same_rows(dirty_shop):
    """A long range is read and checked a slice of days at a time (bounded disk): a row's fate does not change."""
    root, summary = dirty_shop
    first_day = date.fromisoformat(summary["first_day"])
    whole, by_day = stored(root, first_day, 60, slice_bytes=2**40), stored(root, first_day, 60, slice_bytes=1)
    assert all(whole.values()) and by_day == whole


# --- Rewriting and the command line ------------------------------------------------------------------


def test_rewrite_replaces_entity_folders_and_leaves_everything_else(tmp_path):
    stale = tmp_path / "orders" / "date=1999-01-01" / "old.csv"
    stale.parent.mkdir(parents=True)
    stale.write_text("order_id\nO1\n", encoding="utf-8")
    notes = tmp_path / "notes.txt"
    notes.write_text("operator notes", encoding="utf-8")
    generate_sample_shop(tmp_path, customers=100, days=5, end_day="2024-01-05")
    assert not stale.parent.exists()
    assert notes.read_text(encoding="utf-8") == "operator notes"


def test_command_line_writes_the_shop_and_prints_a_summary(tmp_path, capsys):
    main(["--landing", str(tmp_path), "--customers", "300", "--days", "10", "--end-day", "2024-02-10", "--dirty"])
    printed = capsys.readouterr().out
    manifest = json.loads((tmp_path / MANIFEST_NAME).read_text(encoding="utf-8"))
    assert (manifest["first_day"], manifest["last_day"]) == ("2024-02-01", "2024-02-10")
    assert f"{manifest['rows']['interactions']:,} rows" in printed
    assert "bad files" in printed
