"""What every letter carries once compiled from MJML: preheader, a button to the shop with UTM tags,
product cards, the shop's name and postal address, the unsubscribe link and a text part; and what
SendGrid holds is the compiled letter, versioned only when it changes."""

from __future__ import annotations

import logging
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit

import dagster as dg
import pybars
import pytest
from dagster_duckdb import DuckDBResource

from lifecycle_assets.activation.assets import activation_assets, activation_checks
from lifecycle_assets.activation.templates import TEMPLATES_DIR, load_templates, render_letter

from .conftest import materialization_metadata, push, sendgrid_for

UNSUBSCRIBE_TAG = "<%asm_group_unsubscribe_raw_url%>"
TEMPLATES = load_templates()


class _Letter(HTMLParser):
    """The links, images and hidden preheader of a rendered letter, read the way a browser reads them."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.links: list[tuple[str, str]] = []  # (href, link text)
        self.images: list[dict[str, str]] = []
        self.hidden_text: list[str] = []
        self.text: list[str] = []
        self._href: str | None = None
        self._text: list[str] = []
        self._hidden_depth = 0
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "a":
            self._href, self._text = attributes.get("href", ""), []
        if tag == "img":
            self.images.append(attributes)
        if tag == "div" and "display:none" in (attributes.get("style") or "").replace(" ", ""):
            self._hidden_depth = 1
        elif tag == "div" and self._hidden_depth:
            self._hidden_depth += 1

    def handle_endtag(self, tag):
        if tag == "a" and self._href is not None:
            self.links.append((self._href, " ".join("".join(self._text).split())))
            self._href = None
        if tag == "div" and self._hidden_depth:
            self._hidden_depth -= 1

    def handle_data(self, data):
        self.text.append(data)
        if self._href is not None:
            self._text.append(data)
        if self._hidden_depth:
            self.hidden_text.append(data)


def _utm(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items() if key.startswith("utm_")}


def _shop_env(monkeypatch) -> dict[str, str]:
    shop = {
        "LIFECYCLE_SHOP_NAME": "Kaffee & Co",
        "LIFECYCLE_SHOP_POSTAL_ADDRESS": "Hauptstrasse 5, 80331 Muenchen",
        "LIFECYCLE_SHOP_URL": "https://kaffee.example.org/start?lang=de",
    }
    for key, value in shop.items():
        monkeypatch.setenv(key, value)
    return shop


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_a_letter_has_preheader_button_to_the_shop_footer_and_unsubscribe_link(name, monkeypatch):
    shop = _shop_env(monkeypatch)
    template = load_templates()[name]
    sample = template.sample
    letter = render_letter(template, sample)
    page = _Letter(letter.html)
    folder = TEMPLATES_DIR / name

    preheader = pybars.Compiler().compile((folder / "preheader.txt").read_text().strip())(sample)
    assert preheader and preheader in " ".join("".join(page.hidden_text).split())

    button_label = pybars.Compiler().compile((folder / "button.txt").read_text().strip())(sample)
    buttons = [href for href, text in page.links if text == button_label]
    assert buttons, f"no link labelled {button_label!r}"
    button = urlsplit(buttons[0])
    assert f"{button.scheme}://{button.netloc}{button.path}" == "https://kaffee.example.org/start"
    assert parse_qs(button.query)["lang"] == ["de"]  # the shop's own query survives
    assert _utm(buttons[0]) == _utm("?" + sample["utm"])
    assert _utm(buttons[0])["utm_campaign"] == name

    assert (UNSUBSCRIBE_TAG, "Unsubscribe") in page.links
    assert f"{shop['LIFECYCLE_SHOP_NAME']} · {shop['LIFECYCLE_SHOP_POSTAL_ADDRESS']}" in " ".join("".join(page.text).split())

    # The text part: the same button link, address and unsubscribe link, as plain text.
    assert f"{button_label}: {buttons[0]}" in letter.text
    assert f"{shop['LIFECYCLE_SHOP_NAME']}, {shop['LIFECYCLE_SHOP_POSTAL_ADDRESS']}" in letter.text
    assert f"Unsubscribe: {UNSUBSCRIBE_TAG}" in letter.text


def test_product_cards_link_the_product_and_show_its_price_and_image():
    template = TEMPLATES["abandoned_cart"]
    product = {
        "product_id": "P9",
        "name": "Moka pot, 6 cups",
        "price": "39.90",
        "url": "https://shop.example.com/p/9?utm_source=sendgrid&utm_campaign=abandoned_cart",
        "image_url": "https://cdn.example.com/p9.jpg",
    }
    bare = {"product_id": "P10", "name": "Gift card", "price": None, "url": None, "image_url": None}
    letter = render_letter(template, {**template.sample, "products": [product, bare], "recommendations": []})
    page = _Letter(letter.html)

    assert (product["url"], product["name"]) in page.links
    assert [image["src"] for image in page.images] == [product["image_url"]]
    assert page.images[0]["alt"] == product["name"]
    assert "39.90 EUR" in letter.html and "- Moka pot, 6 cups, 39.90 EUR\n  " + product["url"] in letter.text
    # A product the catalogue knows no page, price or image of: its name, and no empty link or image.
    assert "Gift card" in letter.html and not any(text == "Gift card" for _, text in page.links)
    assert all(href for href, _ in page.links)
    assert "- Gift card\n" in letter.text


def test_what_sendgrid_holds_is_the_compiled_letter_and_a_new_shop_address_makes_a_new_version(fake, warehouse, monkeypatch):
    push(warehouse, sendgrid_for(fake))
    first = fake.templates()
    for name, template in load_templates().items():
        version = first[f"lifecycle:{name}"]["versions"][0]
        assert version["html_content"] == template.html and version["plain_content"] == template.text
        assert "<mj-" not in version["html_content"] and "[[" not in version["html_content"]
        assert UNSUBSCRIBE_TAG in version["html_content"] and "{{#each products}}" in version["html_content"]

    push(warehouse, sendgrid_for(fake))
    assert all(len(template["versions"]) == 1 for template in fake.templates().values())

    monkeypatch.setenv("LIFECYCLE_SHOP_POSTAL_ADDRESS", "New Road 2, 1010 Wien")
    push(warehouse, sendgrid_for(fake))
    for name, template in fake.templates().items():
        active = [version for version in template["versions"] if version["active"]]
        assert len(template["versions"]) == 2, name
        assert "New Road 2, 1010 Wien" in active[0]["html_content"] and "New Road 2, 1010 Wien" in active[0]["plain_content"]


def test_a_live_sync_says_when_letters_carry_the_example_postal_address(fake, warehouse, monkeypatch):
    monkeypatch.delenv("LIFECYCLE_SHOP_POSTAL_ADDRESS", raising=False)
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize(
            [*activation_assets, *activation_checks],
            resources={"sendgrid": sendgrid_for(fake), "duckdb": DuckDBResource(database=str(warehouse))},
            instance=instance,
        )
        warnings = [entry.user_message for entry in instance.all_logs(result.run_id) if entry.level == logging.WARNING]
    assert any("LIFECYCLE_SHOP_POSTAL_ADDRESS is not set" in message for message in warnings)
    assert materialization_metadata(result, ["sendgrid_templates"])["shop_postal_address_set"] is False

    monkeypatch.setenv("LIFECYCLE_SHOP_POSTAL_ADDRESS", "Hauptstrasse 5, 80331 Muenchen")
    result = push(warehouse, sendgrid_for(fake))
    assert materialization_metadata(result, ["sendgrid_templates"])["shop_postal_address_set"] is True
