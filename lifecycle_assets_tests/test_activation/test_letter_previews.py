"""What an operator reads about letters in the UI: one rendered letter of each type, and the ledger per state."""

from __future__ import annotations

import pytest

from lifecycle_assets.activation.ledger import ALL_STATES
from lifecycle_assets.environment import shop_currency
from lifecycle_assets.activation.templates import TEMPLATES_DIR, _as_json_numbers, load_templates, render_letter

from .conftest import materialization_metadata, planned_letters, push, sendgrid_for

TEMPLATES = load_templates()


def test_every_letter_type_has_a_sample_personalisation():
    letter_types = {path.name for path in TEMPLATES_DIR.iterdir() if path.is_dir() and not path.name.startswith("_")}
    assert set(TEMPLATES) == letter_types
    assert [name for name, template in TEMPLATES.items() if template.sample is None] == []


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_a_letter_renders_completely_with_its_sample(name):
    template = TEMPLATES[name]
    letter = render_letter(template, template.sample)
    for part in (letter.subject, letter.html, letter.text):
        assert part.strip()
        assert "{{" not in part and "}}" not in part
        assert "[[" not in part and "]]" not in part
    # the greeting and the recommendations come from the sample, not from the template
    assert f"Hi {template.sample['first_name']}," in letter.text
    assert template.sample["recommendations"][0]["name"] in letter.text
    assert f">{template.sample['recommendations'][0]['name']}</a>" in letter.html
    # SendGrid fills its own substitution tag per recipient; handlebars must leave it alone
    assert "<%asm_group_unsubscribe_raw_url%>" in letter.text and "<%asm_group_unsubscribe_raw_url%>" in letter.html


def _with_markup(value):
    """Every text of a personalisation with HTML, handlebars and the previews' own stand-in characters added."""
    if isinstance(value, str):
        return value + ' <b>&"\'`= {{first_name}} }} ~ \ue0000\ue001'
    if isinstance(value, dict):
        return {key: _with_markup(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_with_markup(item) for item in value]
    return value


def test_a_preview_is_exactly_what_handlebars_renders_from_the_whole_template():
    """Previews parse only the template's tags (pybars takes ~1 s per 20 KB letter): the result must not differ."""
    import pybars

    # letters with products, with a bonus and with neither (pybars takes ~10 s for all the letter types)
    for name in ("abandoned_cart", "birthday", "winback"):
        template = TEMPLATES[name]
        whole = {part: pybars.Compiler().compile(getattr(template, part)) for part in ("subject", "html", "text")}
        for personalisation in (template.sample, _with_markup(template.sample), {}):
            letter = render_letter(template, personalisation)
            data = _as_json_numbers(personalisation)
            for part, render in whole.items():
                assert getattr(letter, part) == str(render(data)), f"{name} {part}"


def test_a_bonus_shows_only_when_the_letter_carries_one():
    template = TEMPLATES["birthday"]
    with_bonus = render_letter(template, template.sample).text
    without_bonus = render_letter(template, {**template.sample, "bonus_amount": None, "bonus_expires_on": None}).text
    amount = f"{template.sample['bonus_amount']:g}"  # 10.0 prints as 10, as in SendGrid
    assert f"Your bonus: {amount} {shop_currency()}, valid until {template.sample['bonus_expires_on']}." in with_bonus
    assert "Your bonus" not in without_bonus


def test_a_dry_run_push_shows_a_letter_of_each_type_and_every_ledger_state(fake, warehouse, tmp_path):
    result = push(warehouse, sendgrid_for(fake, api_key=None, outbox_dir=str(tmp_path / "outbox")))

    previews = materialization_metadata(result, ["sendgrid_templates"])["letter_previews"]
    for name, template in TEMPLATES.items():
        letter = render_letter(template, template.sample)
        assert f"### {name}\n\n**Subject:** {letter.subject}\n\n```text\n" in previews
        assert letter.text.strip() in previews
    assert "{{" not in previews

    letters = materialization_metadata(result, ["sendgrid_letters"])
    totals = {state: letters[f"ledger_{state}_total"] for state in ALL_STATES}
    assert totals == {state: 0 for state in ALL_STATES} | {"dry_run": len(planned_letters(warehouse))}
    assert fake.requests == []


def test_bonus_names_the_shops_currency_and_prints_amounts_as_sendgrid_does(monkeypatch):
    monkeypatch.setenv("LIFECYCLE_SHOP_CURRENCY", "USD")
    birthday = load_templates()["birthday"]
    letter = render_letter(birthday, {**birthday.sample, "bonus_amount": 10.0, "bonus_expires_on": "2025-03-01"})
    assert "Your bonus: 10 USD, valid until 2025-03-01." in letter.text
    assert "<strong>10 USD</strong>" in letter.html


def test_a_templates_sync_writes_each_letters_html_preview_and_links_it(fake, warehouse, tmp_path, monkeypatch):
    previews_dir = tmp_path / "letter-previews"
    monkeypatch.setenv("LIFECYCLE_PREVIEWS_DIR", str(previews_dir))
    result = push(warehouse, sendgrid_for(fake, api_key=None, outbox_dir=str(tmp_path / "outbox")))

    metadata = materialization_metadata(result, ["sendgrid_templates"])
    assert metadata["previews_dir"] == str(previews_dir)
    table = metadata["preview_files"]
    for name, template in TEMPLATES.items():
        file = previews_dir / f"{name}.html"
        assert file.read_text(encoding="utf-8") == render_letter(template, template.sample).html
        assert f"| {name} | `{file.name}` | {file.stat().st_size:,} | - | - |" in table
    # No screenshot was taken: the table says how to take them, and links none.
    assert "make previews" in table and ".png" not in table
    assert metadata["largest_letter_html_bytes"] == max((previews_dir / f"{name}.html").stat().st_size for name in TEMPLATES)
