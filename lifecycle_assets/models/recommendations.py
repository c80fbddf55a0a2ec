"""The site's recommendations leave the warehouse as files, and their quality is measured at every build.

`site_recommendation_files` writes marts.site_recommendations (the block per visitor) and
marts.checkout_cross_sell (what goes with a product) to Parquet and to JSON Lines in
`recommendations_dir()`, one row per visitor or product with its ranked products. Each file is
written to a temporary name in the same folder and renamed over the old one, so the site reads
either the previous build's file or this one, never half a file (docs/recommendations.md).

`recommendation_backtest` holds out each buyer's last purchase day, rebuilds the recommendations
with the very SQL models from everything else (their own views and carts only from before that
day, as the file built the night before would have known them), and counts how often the top N
holds a product they then bought, against the popular products alone. It judges as of the backtest
grid's day and shows its stored figures while nothing it read changed (models/backtest_inputs.py).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import uuid
from dataclasses import asdict, dataclass
from dataclasses import fields as fields_of
from pathlib import Path

import dagster as dg
from dagster_duckdb import DuckDBResource

from lifecycle_assets.environment import recommendations_dir
from lifecycle_assets.metadata import markdown_table
from lifecycle_assets.models.backtest_inputs import (
    FINGERPRINT_COLUMN, inputs_fingerprint, judged_as_of, landed_by, models_read_by, staging_as_known_on,
    stored_fingerprint,
)
from lifecycle_assets.models.learning import build_in_key_batches
from lifecycle_assets.models.settings import LifecycleSettings
from lifecycle_assets.models.sql_models import (
    SQL_MODELS_DIR, STATE_SCHEMA, _columns, batches_for, bound_build_memory, bound_parameters, create_table, load_models,
    select_sql_on, transaction,
)

SITE_TABLE = "marts.site_recommendations"
CROSS_SELL_TABLE = "marts.checkout_cross_sell"
BACKTEST_TABLE = "marts.recommendation_backtest"
# file stem -> (table, the columns of one row of the file, a ranked item of its `products` list). A list is put in
# rank order by list_sort: structs compare field by field and `rank` comes first and is unique in a list, so this is
# the order of `list(... order by rank)`, which costs 2-3x more (an ordered aggregate sorts each group on its own).
EXPORTS = {
    "site_recommendations": (SITE_TABLE, "visitor_type, visitor_id",
                             "{'rank': recommendation_rank, 'product_id': product_id, 'source': source}"),
    "checkout_cross_sell": (CROSS_SELL_TABLE, "product_id",
                            "{'rank': cross_sell_rank, 'product_id': related_product_id, 'source': source}"),
}
FORMATS = {"parquet": "(format parquet, compression zstd)", "jsonl": "(format json)"}
MANIFEST_NAME = "manifest.json"


# --- the export ------------------------------------------------------------------------------------


def _write_atomically(connection, query: str, target: Path, copy_options: str) -> int:
    """COPY to a hidden temporary file beside the target, flush it to disk, rename it over the target; rows written."""
    temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    try:
        rows = connection.execute(f"copy ({query}) to '{temporary.as_posix()}' {copy_options}").fetchone()[0]
        with open(temporary, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
    return int(rows)


def _kept_lists(connection, stem: str, table: str, keys: str, item: str) -> tuple[str, int]:
    """The export's rows, one per key with its ranked list, kept between builds; returns the table and the keys grouped.

    Grouping every visitor's rows into one list was most of the export's cost (5.4 of 12.5 s at 1M), and a
    daily build changes few visitors' lists. So the lists are kept in `lifecycle_state` with a digest of each
    key's rows (the sum of their rows' hashes, and their count); a build groups again only the keys whose digest
    changed, appeared or vanished: whatever changed the table, a daily recompute by visitor, a full rebuild,
    or a table written by other code. The key columns are compared null-safe (the `default` visitor has none).
    """
    kept = f"{STATE_SCHEMA}.export__{stem}"
    columns = [column.strip() for column in keys.split(",")]

    def same_key(left: str, right: str) -> str:
        return " and ".join(f"{left}.{column} is not distinct from {right}.{column}" for column in columns)

    # A row's struct hash is hashed again: DuckDB combines a struct's field hashes so that the same change on two rows
    # (two ranks' source from goes_with to popular) cancelled in an xor of them, and 823 of 820k lists went unchanged
    # at 1M. Hashing the 64-bit value again mixes it (multiplications), so such changes no longer cancel (1.0 s at 1M;
    # hashing each row's text instead: 3.0 s).
    digest = f"sum(hash(hash({item}))::hugeint) as digest, count(*) as row_count"
    lists = f"select {keys}, {digest}, list_sort(list({item})) as products from {table}"
    empty, digests, changed = f"export_{stem}_empty", f"export_{stem}_digests", f"export_{stem}_changed"
    connection.execute(f"create schema if not exists {STATE_SCHEMA}")
    connection.execute(f"create or replace temporary table {empty} as {lists} where false group by all")
    connection.execute(f"create table if not exists {kept} as from {empty}")
    if _columns(connection, kept) != _columns(connection, empty):  # kept by other code (an older digest)
        connection.execute(f"create or replace table {kept} as from {empty}")
    try:
        connection.execute(f"create or replace temporary table {digests} as select {keys}, {digest} from {table} group by all")
        connection.execute(
            f"create or replace temporary table {changed} as select "
            + ", ".join(f"coalesce(now.{column}, kept.{column}) as {column}" for column in columns)
            + f" from {digests} as now full join {kept} as kept on {same_key('kept', 'now')} "
            "where now.digest is distinct from kept.digest or now.row_count is distinct from kept.row_count"
        )
        regrouped = connection.execute(f"select count(*) from {changed}").fetchone()[0]
        if regrouped:
            # A list aggregate's states stay in memory, so the changed keys are grouped build_keys_per_batch() at a
            # time (by a hash of the key): at 5M customers (4.1M visitors) one statement ran out of the 4 GB build limit.
            batches = batches_for(regrouped)
            with transaction(connection):
                connection.execute(f"delete from {kept} as kept using {changed} as now where {same_key('kept', 'now')}")
                for batch in range(batches):
                    connection.execute(
                        f"insert into {kept} {lists} as listed semi join {changed} on {same_key('listed', changed)} "
                        f"where hash({keys}) % {batches} = {batch} group by all"
                    )
    finally:
        connection.execute(f"drop table if exists {empty}")
        connection.execute(f"drop table if exists {digests}")
        connection.execute(f"drop table if exists {changed}")
    return kept, int(regrouped)


def export_recommendations(connection, folder: Path, as_of: dt.date) -> tuple[dict[str, dict[str, int]], dict[str, int]]:
    """Write every export in every format, then the manifest; returns file name -> rows and bytes, and export -> the keys
    whose list was grouped again (`_kept_lists`)."""
    folder.mkdir(parents=True, exist_ok=True)
    written: dict[str, dict[str, int]] = {}
    regrouped: dict[str, int] = {}
    for stem, (table, keys, item) in EXPORTS.items():
        kept, regrouped[stem] = _kept_lists(connection, stem, table, keys, item)
        rows_table = f"export_{stem}"
        try:
            # sorted once for every format (a table keeps the order it was written in)
            connection.execute(f"create or replace temporary table {rows_table} as select {keys}, products from {kept} order by {keys}")
            for extension, options in FORMATS.items():
                target = folder / f"{stem}.{extension}"
                rows = _write_atomically(connection, f"select * from {rows_table}", target, options)
                written[target.name] = {"rows": rows, "bytes": target.stat().st_size}
        finally:
            connection.execute(f"drop table if exists {rows_table}")
    manifest = {"as_of": as_of.isoformat(), "built_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "files": written}
    temporary = folder / f".{MANIFEST_NAME}.{uuid.uuid4().hex}.tmp"
    temporary.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, folder / MANIFEST_NAME)
    return written, regrouped


@dg.asset(
    key=["recommendations", "site_recommendation_files"],
    deps=[dg.AssetKey(SITE_TABLE.split(".")), dg.AssetKey(CROSS_SELL_TABLE.split("."))],
    group_name="lifecycle",
    kinds={"duckdb", "parquet", "json"},
    owners=["team:data"],
    description="The site's recommendation block per visitor and the checkout cross-sell per product as Parquet and "
    "JSON Lines files in LIFECYCLE_RECOMMENDATIONS_DIR, each replaced atomically (temporary file + rename) at every "
    "build; schema in docs/recommendations.md.",
)
def site_recommendation_files(duckdb: DuckDBResource, lifecycle_settings: LifecycleSettings) -> dg.MaterializeResult:
    folder = recommendations_dir()
    with duckdb.get_connection() as connection:
        bound_build_memory(connection)  # the export and the backtest are as big as the models
        as_of = lifecycle_settings.resolve_as_of(connection)
        written, regrouped = export_recommendations(connection, folder, as_of)
    metadata: dict[str, object] = {
        "folder": dg.MetadataValue.path(str(folder)),
        "as_of": dg.MetadataValue.text(as_of.isoformat()),
        "files": dg.MetadataValue.md(
            markdown_table(["file", "rows", "bytes"], [(name, f["rows"], f["bytes"]) for name, f in written.items()])
        ),
    }
    for name, figures in written.items():
        metadata[f"rows/{name}"] = dg.MetadataValue.int(figures["rows"])
    for stem, keys in regrouped.items():  # the rows or products whose list changed since the last export
        metadata[f"lists_regrouped/{stem}"] = dg.MetadataValue.int(keys)
    return dg.MaterializeResult(metadata=metadata)


# --- the backtest ----------------------------------------------------------------------------------

WORK_SCHEMA = "recommendation_backtest_work"
BASELINE_SCHEMA = "recommendation_backtest_baseline"
KNOWN_SCHEMA = "recommendation_backtest_known"  # staging as the judged day's build knew it, while preparing
LOOKS_SCHEMA = "recommendation_backtest_looks"  # what a cart's and a view's chance is learnt from
# The models the recommendations are made of, in build order; the backtest runs them on its own tables.
RELATIONS_TABLE = "intermediate.site_recommendation_relations"
BACKTEST_MODELS = ("marts.product_affinity", "intermediate.product_goes_with", "intermediate.product_bought_next",
                   "intermediate.looked_then_bought", RELATIONS_TABLE, SITE_TABLE)
LEARNT_LOOKS = "intermediate.looked_then_bought"  # learnt from every customer, not the held-out buyers


@dataclass
class RecommendationBacktest:
    top_n: int
    customers_judged: int
    hit_rate: float
    baseline_hit_rate: float
    hit_rate_ci: tuple[float, float]
    baseline_hit_rate_ci: tuple[float, float]
    only_recommendations_hit: int  # customers the recommendations hit and the baseline missed
    only_baseline_hit: int
    p_value: float  # exact McNemar test on those two counts: could the difference be chance?
    repeat_buyers_judged: int
    repeat_buyers_hit_rate: float
    repeat_buyers_baseline_hit_rate: float

    def markdown(self) -> str:
        def row(name: str, rate: float, ci: tuple[float, float]) -> tuple:
            return (name, f"{rate:.1%}", f"{ci[0]:.1%} - {ci[1]:.1%}")

        return (
            f"Each buyer's last purchase day held out ({self.customers_judged} buyers): share whose top {self.top_n} "
            f"holds a product bought that day. Only the recommendations hit {self.only_recommendations_hit}, only "
            f"the popular products {self.only_baseline_hit} (exact McNemar p = {self.p_value:.2g}). Buyers with an "
            f"earlier purchase ({self.repeat_buyers_judged}): {self.repeat_buyers_hit_rate:.1%} vs "
            f"{self.repeat_buyers_baseline_hit_rate:.1%}.\n\n"
            + markdown_table(
                ["top N from", "hit rate", "95% interval (Wilson)"],
                [
                    row("site recommendations", self.hit_rate, self.hit_rate_ci),
                    row("popular products only (baseline)", self.baseline_hit_rate, self.baseline_hit_rate_ci),
                ],
            )
        )


def _build_on(connection, model, schema: str, parameters: dict[str, object]) -> None:
    create_table(connection, model, f"{schema}.{model.name}", select_sql_on(model, schema), bound_parameters(model, parameters))


def _buyers_hit(work: str, lists: str) -> str:
    """Held-out buyers shown a product they bought on their held-out day: shown their own rows, else the default rows,
    as on the site. (Joined per held-out product rather than listing what each buyer is shown, which cost twice this.)"""
    return f"""
        select held.customer_id
        from {work}.held_out_products as held
        semi join {lists}.site_recommendations as own
            on own.visitor_type = 'customer' and own.visitor_id = held.customer_id and own.product_id = held.product_id
        union
        select held.customer_id
        from {work}.held_out_products as held
        semi join {lists}.site_recommendations as fallback
            on fallback.visitor_type = 'default' and fallback.product_id = held.product_id
        anti join {lists}.site_recommendations as own
            on own.visitor_type = 'customer' and own.visitor_id = held.customer_id
    """


def _prepare_held_out(connection, settings: LifecycleSettings, as_of: dt.date) -> None:
    """The work schema: every buyer's last purchase day up to `as_of` held out, their interest only from before it; the
    orders, lines and products as the build of `as_of` knew them (a refund landed later is not known)."""
    work, known = WORK_SCHEMA, KNOWN_SCHEMA
    for schema in (BASELINE_SCHEMA, work, known):
        connection.execute(f"drop schema if exists {schema} cascade")
    connection.execute(f"create schema {work}")
    try:
        staging_as_known_on(connection, known, as_of, settings, ("staging.stg_orders", "staging.stg_order_items", "staging.stg_products"))
        connection.execute(
            f"""
            create table {work}.held_out as
            select customer_id, max(ordered_on) as held_out_on,
                count(distinct ordered_on) > 1 as bought_before
            from {known}.stg_order_items
            where is_purchase
            group by customer_id
            """
        )
        connection.execute(
            f"""
            create table {work}.held_out_products as
            select distinct items.customer_id, items.product_id
            from {known}.stg_order_items as items
            join {work}.held_out as held_out
                on held_out.customer_id = items.customer_id and items.ordered_on = held_out.held_out_on
            where items.is_purchase
            """
        )
        # The backtest's models (BACKTEST_MODELS) read only purchases and only these columns of the order items: copying
        # just those costs a fraction of copying every column.
        connection.execute(
            f"""
            create table {work}.stg_order_items as
            select items.customer_id, items.order_id, items.product_id, items.ordered_on, items.is_purchase
            from {known}.stg_order_items as items
            left join {work}.held_out as held_out using (customer_id)
            where items.is_purchase and (items.ordered_on < held_out.held_out_on or held_out.held_out_on is null)
            """
        )
        connection.execute(f"create table {work}.stg_products as select * from {known}.stg_products")
    finally:
        connection.execute(f"drop schema if exists {known} cascade")
    # Only the judged buyers' views and carts matter, each from the interest window before their held-out day (events
    # land on the day they occur and the first landing of an event id counts, so this is what `as_of` knew). A view,
    # not a copy: the site model reads it twice, and copying the events cost as much as joining them twice.
    # (A view takes no bound parameter; the number of days is an integer setting.)
    connection.execute(
        f"""
        create view {work}.stg_interactions as
        select events.*
        from staging.stg_interactions as events
        join {work}.held_out as held_out using (customer_id)
        where events.event_type in ('product_view', 'add_to_cart')
            and events.landed_on <= date '{as_of.isoformat()}'
            and events.occurred_on < held_out.held_out_on
            and events.occurred_on > held_out.held_out_on - {int(settings.recommendations_interest_days)}
        """
    )


def _learn_looks(connection, model, settings: LifecycleSettings, as_of: dt.date) -> None:
    """The work schema's looked_then_bought, as the site learnt it on `as_of`: every customer's views and carts landed
    by then, judged with the real recommendations_interest_days, against the purchases left after holding out (a look
    followed by a held-out purchase must not teach the answer). Built from the buyers' own windows (work's events)
    with the backtest's unbounded window, it judged no look at all, and views and carts never counted. Built a batch
    of customers at a time, as the learning builds it."""
    looks = LOOKS_SCHEMA
    connection.execute(f"drop schema if exists {looks} cascade")
    connection.execute(f"create schema {looks}")
    known_on = f"date '{as_of.isoformat()}'"
    connection.execute(
        f"create view {looks}.stg_interactions as select * from staging.stg_interactions "
        f"where landed_on <= {known_on} and occurred_on <= {known_on}"
    )
    connection.execute(f"create view {looks}.stg_order_items as select * from {WORK_SCHEMA}.stg_order_items")
    build_in_key_batches(connection, model, looks, bound_parameters(model, settings.sql_parameters(as_of)),
                         f"{WORK_SCHEMA}.{model.name}")


def run_recommendation_backtest(connection, settings: LifecycleSettings, as_of: dt.date) -> RecommendationBacktest | None:
    """Hit rate of the top N on held-out last purchases, recommendations vs popular products; None: no buyer yet."""
    top_n = settings.recommendations_site_count
    models = {model.table: model for model in load_models()}
    parameters = settings.sql_parameters(as_of)
    # Each buyer's window is cut in _prepare_held_out; the model's own window (from as_of back) must not cut again.
    parameters["recommendations_interest_days"] = 1_000_000
    work, baseline = WORK_SCHEMA, BASELINE_SCHEMA
    try:
        _prepare_held_out(connection, settings, as_of)
        for table in BACKTEST_MODELS:
            if table == LEARNT_LOOKS:
                _learn_looks(connection, models[table], settings, as_of)
            else:
                _build_on(connection, models[table], work, parameters)
        # The baseline: the same SQL with the personal part switched off (no views or carts, no pairs), so a
        # buyer gets the popular products less what they bought.
        connection.execute(f"create schema {baseline}")
        connection.execute(f"create view {baseline}.stg_order_items as select * from {work}.stg_order_items")
        connection.execute(f"create view {baseline}.stg_products as select * from {work}.stg_products")
        connection.execute(f"create view {baseline}.stg_interactions as select * from {work}.stg_interactions where false")
        for pairs in ("product_goes_with", "product_bought_next", "looked_then_bought"):
            connection.execute(f"create view {baseline}.{pairs} as select * from {work}.{pairs} where false")
        _build_on(connection, models[RELATIONS_TABLE], baseline, parameters)
        _build_on(connection, models[SITE_TABLE], baseline, parameters)
        judged = connection.execute(
            f"""
            with recommended as ({_buyers_hit(work, work)}),
            baseline as ({_buyers_hit(work, baseline)})
            select
                held_out.customer_id,
                held_out.bought_before,
                recommended.customer_id is not null as recommended_hit,
                baseline.customer_id is not null as baseline_hit
            from {work}.held_out as held_out
            left join recommended using (customer_id)
            left join baseline using (customer_id)
            """
        ).fetchall()
    finally:
        for schema in (baseline, LOOKS_SCHEMA, work):
            connection.execute(f"drop schema if exists {schema} cascade")
    if not judged:
        return None
    return summarise(top_n, [(bool(row[1]), bool(row[2]), bool(row[3])) for row in judged])


def summarise(top_n: int, judged: list[tuple[bool, bool, bool]]) -> RecommendationBacktest:
    """(bought_before, recommendations hit, baseline hit) per buyer -> the hit rates, their intervals and the test."""
    from scipy.stats import binomtest  # imported here: scipy.stats costs every process that loads the definitions ~2 s

    count = len(judged)
    hits = sum(1 for _, hit, _ in judged if hit)
    baseline_hits = sum(1 for _, _, hit in judged if hit)
    only_recommendations = sum(1 for _, hit, baseline in judged if hit and not baseline)
    only_baseline = sum(1 for _, hit, baseline in judged if baseline and not hit)
    discordant = only_recommendations + only_baseline
    p_value = binomtest(only_recommendations, discordant, 0.5).pvalue if discordant else 1.0
    repeat = [(hit, baseline) for before, hit, baseline in judged if before]

    def interval(successes: int) -> tuple[float, float]:
        ci = binomtest(successes, count).proportion_ci(confidence_level=0.95, method="wilson")
        return (float(ci.low), float(ci.high))

    return RecommendationBacktest(
        top_n=top_n,
        customers_judged=count,
        hit_rate=hits / count,
        baseline_hit_rate=baseline_hits / count,
        hit_rate_ci=interval(hits),
        baseline_hit_rate_ci=interval(baseline_hits),
        only_recommendations_hit=only_recommendations,
        only_baseline_hit=only_baseline,
        p_value=float(p_value),
        repeat_buyers_judged=len(repeat),
        repeat_buyers_hit_rate=sum(hit for hit, _ in repeat) / len(repeat) if repeat else 0.0,
        repeat_buyers_baseline_hit_rate=sum(baseline for _, baseline in repeat) / len(repeat) if repeat else 0.0,
    )


def write_backtest(connection, result: RecommendationBacktest | None, judged_on: dt.date | None = None,
                   fingerprint: str | None = None) -> None:
    """marts.recommendation_backtest: one row per figure, with the day judged as of and the fingerprint of what it read
    (backtest_inputs); empty when no buyer could be judged."""
    connection.execute("create schema if not exists marts")
    connection.execute(
        f"create or replace table {BACKTEST_TABLE} (metric varchar, value double, judged_as_of date, judged_at timestamp, "
        f"{FINGERPRINT_COLUMN} varchar)"
    )
    if result is None:
        return
    figures = {
        key: value for key, value in asdict(result).items() if isinstance(value, (int, float)) and not isinstance(value, bool)
    }
    figures |= {"hit_rate_ci_low": result.hit_rate_ci[0], "hit_rate_ci_high": result.hit_rate_ci[1]}
    figures |= {"baseline_hit_rate_ci_low": result.baseline_hit_rate_ci[0], "baseline_hit_rate_ci_high": result.baseline_hit_rate_ci[1]}
    judged_at = dt.datetime.now(dt.UTC).replace(tzinfo=None)  # one time for every row (each insert has its own)
    connection.executemany(
        f"insert into {BACKTEST_TABLE} values (?, ?, ?, ?, ?)",
        [(k, float(v), judged_on, judged_at, fingerprint) for k, v in figures.items()],
    )


def stored_backtest(connection) -> tuple[RecommendationBacktest, dt.date, dt.datetime]:
    """The figures in the backtest table as a result, the day they were judged as of and when."""
    rows = connection.execute(f"select metric, value, judged_as_of, judged_at from {BACKTEST_TABLE}").fetchall()
    figures = {row[0]: row[1] for row in rows}
    fields = {}
    for field in fields_of(RecommendationBacktest):
        if field.name.endswith("_ci"):
            fields[field.name] = (figures[f"{field.name}_low"], figures[f"{field.name}_high"])
        else:
            fields[field.name] = int(figures[field.name]) if field.type == "int" else figures[field.name]
    return RecommendationBacktest(**fields), rows[0][2], rows[0][3]


def backtest_fingerprint(connection, settings: LifecycleSettings, judged_on: dt.date, root: Path = SQL_MODELS_DIR) -> str:
    """What the backtest reads: the models the recommendations are built from, and the raw orders, lines, events and
    products landed by the day it judges as of."""
    return inputs_fingerprint(connection, settings, judged_on,
                              landed_by(connection, judged_on, ("orders", "order_items", "interactions", "products")),
                              models_read_by(BACKTEST_MODELS, root))


def backtest_metadata(result: RecommendationBacktest) -> dict[str, object]:
    return {
        "backtest": dg.MetadataValue.md(result.markdown()),
        "top_n": dg.MetadataValue.int(result.top_n),
        "customers_judged": dg.MetadataValue.int(result.customers_judged),
        "hit_rate": dg.MetadataValue.float(round(result.hit_rate, 4)),
        "baseline_hit_rate": dg.MetadataValue.float(round(result.baseline_hit_rate, 4)),
        "hit_rate_over_baseline": dg.MetadataValue.float(
            round(result.hit_rate / result.baseline_hit_rate, 3) if result.baseline_hit_rate else float("nan")
        ),
        "p_value": dg.MetadataValue.float(result.p_value),
        "repeat_buyers/hit_rate": dg.MetadataValue.float(round(result.repeat_buyers_hit_rate, 4)),
        "repeat_buyers/baseline_hit_rate": dg.MetadataValue.float(round(result.repeat_buyers_baseline_hit_rate, 4)),
    }


@dg.asset(
    key=BACKTEST_TABLE.split("."),
    deps=[
        dg.AssetKey(["staging", "stg_order_items"]),
        dg.AssetKey(["staging", "stg_interactions"]),
        dg.AssetKey(["staging", "stg_products"]),
        dg.AssetKey(SITE_TABLE.split(".")),
    ],
    group_name="lifecycle",
    kinds={"duckdb", "python"},
    owners=["team:data"],
    description="Backtest of the site recommendations as of the backtest grid's day (backtest_every_days): each buyer's "
    "last purchase day up to it held out, the recommendations rebuilt by the same SQL from everything else (their own views and carts only from before that day); hit rate of "
    "the top recommendations_site_count against the popular products alone.",
)
def recommendation_backtest(duckdb: DuckDBResource, lifecycle_settings: LifecycleSettings) -> dg.MaterializeResult:
    with duckdb.get_connection() as connection:
        bound_build_memory(connection)  # the export and the backtest are as big as the models
        judged_on = judged_as_of(lifecycle_settings.resolve_as_of(connection), lifecycle_settings.backtest_every_days)
        fingerprint = backtest_fingerprint(connection, lifecycle_settings, judged_on)
        judged_again = fingerprint != stored_fingerprint(connection, BACKTEST_TABLE)
        if judged_again:
            result = run_recommendation_backtest(connection, lifecycle_settings, judged_on)
            write_backtest(connection, result, judged_on, fingerprint)
            if result is None:
                return dg.MaterializeResult(metadata={"not_enough_history": dg.MetadataValue.text("no buyer to judge yet")})
        result, judged_on, judged_at = stored_backtest(connection)
    return dg.MaterializeResult(metadata={
        **backtest_metadata(result),
        "judged_as_of": dg.MetadataValue.text(judged_on.isoformat()),
        "judged_this_build": dg.MetadataValue.bool(judged_again),
        "judged_at": dg.MetadataValue.text(judged_at.isoformat(timespec="seconds")),
    })


RECOMMENDATION_ASSETS = (site_recommendation_files, recommendation_backtest)
