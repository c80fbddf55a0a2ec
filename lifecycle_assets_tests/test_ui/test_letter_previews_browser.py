"""A marketer's letter preview in a real headless browser: the button and the unsubscribe link are
there, the product cards stack on a phone, and the screenshots `make previews` takes show the
current letter (and stop being linked once the letter changes)."""

from __future__ import annotations

import json
import re
import shutil
import struct
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from lifecycle_assets.activation.previews import WIDTHS, serve_offline, take_screenshots, write_html_previews
from lifecycle_assets.activation.templates import TEMPLATES_DIR, load_templates

from .conftest import CHROMIUM_FLAGS

LETTER = "abandoned_cart"


def _png_width(file: Path) -> int:
    header = file.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", f"{file} is not a PNG"
    return struct.unpack(">I", header[16:20])[0]


@pytest.mark.browser
def test_a_letter_preview_shows_the_button_and_the_unsubscribe_link(chromium_path, tmp_path):
    from playwright.sync_api import sync_playwright

    templates_dir = tmp_path / "templates"
    shutil.copytree(TEMPLATES_DIR, templates_dir)
    templates = {LETTER: load_templates(templates_dir)[LETTER]}
    sample = templates[LETTER].sample
    previews_dir = tmp_path / "previews"
    preview = take_screenshots(write_html_previews(templates, previews_dir), Path(chromium_path))[LETTER]

    button_label = (TEMPLATES_DIR / LETTER / "button.txt").read_text().strip()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_FLAGS)
        try:
            card_layout = {}
            for width_name, width in WIDTHS.items():
                page = browser.new_page(viewport={"width": width, "height": 900})
                page.route(re.compile(r"^https?://"), serve_offline)  # offline: image placeholders, nothing else
                page.goto(preview.html_file.as_uri())

                button = page.get_by_role("link", name=button_label, exact=True)
                assert button.is_visible()
                assert parse_qs(urlsplit(button.get_attribute("href")).query)["utm_campaign"] == [LETTER]
                unsubscribe = page.get_by_role("link", name="Unsubscribe", exact=True)
                assert unsubscribe.is_visible()
                assert unsubscribe.get_attribute("href") == "<%asm_group_unsubscribe_raw_url%>"

                first_product = sample["products"][0]
                image = page.locator(f'img[src="{first_product["image_url"]}"]').bounding_box()
                name = page.get_by_text(first_product["name"], exact=True).bounding_box()
                card_layout[width_name] = "beside" if name["x"] > image["x"] + image["width"] else "stacked"
                page.close()
        finally:
            browser.close()
    # Responsive: the image beside the product's name on a desktop, above it on a phone.
    assert card_layout == {"desktop": "beside", "phone": "stacked"}

    assert set(preview.screenshots) == set(WIDTHS)
    for width_name, file in preview.screenshots.items():
        assert _png_width(file) == WIDTHS[width_name]
    assert write_html_previews(templates, previews_dir)[LETTER].screenshots == preview.screenshots

    # Another sample makes another letter: its old screenshots are no longer linked as current.
    sample_file = templates_dir / LETTER / "sample.json"
    sample_file.write_text(json.dumps({**sample, "first_name": "Ida"}), encoding="utf-8")
    changed = {LETTER: load_templates(templates_dir)[LETTER]}
    assert write_html_previews(changed, previews_dir)[LETTER].screenshots == {}
