"""A letter's products carry what its cards show (price, link, image), and every link says which letter it came from."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import duckdb

from lifecycle_assets.models.settings import LifecycleSettings
from lifecycle_assets.models.sql_models import build_all
from lifecycle_assets_tests.test_models.tiny_shop import TinyShop, at, day

AS_OF = 400


def test_product_cards_get_price_tracked_link_and_image_from_the_catalogue(tmp_path):
    shop = (
        TinyShop()
        .product("mug", price=12.5, url="https://shop.example.com/mug", image_url="https://cdn.example.com/mug.jpg")
        .product("filter", price=3, url="https://shop.example.com/index.php?route=product&id=filter")
        .product("kettle", price=49.99)  # a catalogue row without page or image
    )
    shop.customer("carl", at(300))
    for product in ("mug", "filter", "kettle"):
        shop.event("add_to_cart", "carl", at(AS_OF, 8), product_id=product)
    database = shop.seen_until(at(AS_OF, 23, 59)).write(tmp_path / "shop.duckdb")
    with duckdb.connect(str(database)) as connection:
        build_all(connection, LifecycleSettings(as_of=day(AS_OF).isoformat(), recommendations_count=0))
        letter_key, personalisation = connection.execute(
            "select letter_key, personalisation from marts.letters_planned where template_name = 'abandoned_cart'"
        ).fetchone()
    letter = json.loads(personalisation)
    products = {product["product_id"]: product for product in letter["products"]}

    tags = {key: values[0] for key, values in parse_qs(letter["utm"]).items()}
    assert tags == {
        "utm_source": "sendgrid",
        "utm_medium": "email",
        "utm_campaign": "abandoned_cart",
        "utm_content": letter_key,  # parse_qs decodes: the letter key survives the URL intact
    }
    assert products["mug"]["price"] == "12.50" and products["filter"]["price"] == "3.00"
    assert products["mug"]["image_url"] == "https://cdn.example.com/mug.jpg"
    mug = urlsplit(products["mug"]["url"])
    assert (mug.netloc, mug.path) == ("shop.example.com", "/mug")
    assert parse_qs(mug.query) == {key: [value] for key, value in tags.items()}
    filter_link = parse_qs(urlsplit(products["filter"]["url"]).query)
    assert filter_link["route"] == ["product"] and filter_link["id"] == ["filter"]  # the shop's own query is kept
    assert filter_link["utm_content"] == [letter_key]
    assert products["kettle"] == {"product_id": "kettle", "name": "Product kettle", "price": "49.99", "url": None, "image_url": None}
