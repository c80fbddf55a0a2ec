"""Letter templates kept as code, compiled from MJML and mirrored to SendGrid dynamic templates.

Each letter type is a folder `templates/<template_name>/` with `subject.txt`, `preheader.txt` (the
line an inbox shows after the subject), `button.txt` (the call to action), `message.html` and
`message.txt` (handlebars: what this letter says) and `products_heading.txt`, plus `sample.json`:
a realistic personalisation with the keys docs/lifecycle_model.md gives the letter type, used to
show an operator the rendered letter. The frame every letter shares (header, greeting, bonus,
button, product cards, footer with the shop's address and the unsubscribe link) is
`templates/_layout/`, written once in MJML and compiled to responsive HTML by mrml (the Rust port
of MJML) when the templates load. In SendGrid a letter type is the dynamic template
`lifecycle:<name>`, holding the compiled HTML and the text part; the version name carries a hash of
that content, so a sync only writes when the compiled letter changed.
"""

from __future__ import annotations

import functools
import hashlib
import html
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from lifecycle_assets import environment
from lifecycle_assets.activation.client import SendGridSession, pages

TEMPLATES_DIR = Path(__file__).parent / "templates"
SENDGRID_NAME_PREFIX = "lifecycle:"


@dataclass(frozen=True)
class LetterTemplate:
    name: str
    subject: str
    html: str
    text: str
    # Not part of what SendGrid holds, so not part of the content hash either.
    sample: dict | None = field(default=None, compare=False)

    @property
    def content_hash(self) -> str:
        digest = hashlib.sha256("\x00".join([self.subject, self.html, self.text]).encode("utf-8"))
        return digest.hexdigest()[:12]

    @property
    def sendgrid_name(self) -> str:
        return SENDGRID_NAME_PREFIX + self.name

    @property
    def version_name(self) -> str:
        return f"{self.name} {self.content_hash}"


LETTER_PARTS = ("subject.txt", "preheader.txt", "button.txt", "message.html", "message.txt", "products_heading.txt")
LAYOUT_PARTS = ("letter.mjml", "product_card.mjml", "body.txt")
SAMPLE_FILE = "sample.json"
LAYOUT_FOLDER = "_layout"


def _read_parts(folder: Path, names: tuple[str, ...], what: str) -> dict[str, str]:
    parts = {}
    for name in names:
        file = folder / name
        if not file.is_file():
            raise FileNotFoundError(f"{what} has no {name} (expected {file})")
        parts[name] = file.read_text(encoding="utf-8")
    return parts


def shop_link(utm: str) -> str:
    """The shop's home page with a letter's UTM tags (`utm` is the handlebars expression that prints them)."""
    url = environment.shop_url()
    return f"{url}{'&' if '?' in url else '?'}{utm}"


def _fill(layout: str, values: dict[str, str]) -> str:
    # [[...]] placeholders, not handlebars: the layout's {{...}} are SendGrid's to fill per letter.
    for name, value in values.items():
        layout = layout.replace(f"[[{name}]]", value)
    return layout


def compile_mjml(mjml: str, what: str) -> str:
    """Responsive HTML from MJML; handlebars and SendGrid's substitution tags pass through untouched."""
    import mrml

    try:
        return mrml.to_html(mjml).content
    except Exception as error:  # mrml raises its own error types; name the letter whatever they are
        raise ValueError(f"{what}: the MJML does not compile: {error}") from error


def _compile_letter(name: str, layout: dict[str, str], parts: dict[str, str]) -> tuple[str, str]:
    """The letter's HTML (compiled from the MJML layout) and its text part."""
    shop = {"shop_name": environment.shop_name(), "shop_postal_address": environment.shop_postal_address()}
    common = {
        "currency": environment.shop_currency(),
        "products_heading": parts["products_heading.txt"].strip(),
        "button": parts["button.txt"].strip(),
    }
    mjml = _fill(
        layout["letter.mjml"].replace("[[product_card]]", layout["product_card.mjml"].rstrip("\n")),
        {
            **{key: html.escape(value, quote=False) for key, value in {**common, **shop}.items()},
            "subject": parts["subject.txt"].strip(),
            "preheader": parts["preheader.txt"].strip(),
            "message": parts["message.html"].strip(),
            # Escaped in HTML (an attribute decodes &amp;), printed as is in the text part.
            "shop_link": html.escape(shop_link("{{utm}}")),
        },
    )
    text = _fill(
        layout["body.txt"],
        {**common, **shop, "message": parts["message.txt"].strip(), "shop_link": shop_link("{{{utm}}}")},
    )
    return compile_mjml(mjml, f"letter template {name!r}"), text


def load_templates(directory: Path = TEMPLATES_DIR) -> dict[str, LetterTemplate]:
    """Every letter type compiled into the shared layout; a missing part is an error that names it."""
    layout = _read_parts(directory / LAYOUT_FOLDER, LAYOUT_PARTS, "the letter layout")
    templates = {}
    for folder in sorted(path for path in directory.iterdir() if path.is_dir() and not path.name.startswith("_")):
        parts = _read_parts(folder, LETTER_PARTS, f"letter template {folder.name!r}")
        for name in ("subject.txt", "preheader.txt", "button.txt"):
            if not parts[name].strip():
                raise ValueError(f"letter template {folder.name!r}: {name} is empty")
        letter_html, letter_text = _compile_letter(folder.name, layout, parts)
        templates[folder.name] = LetterTemplate(
            folder.name, parts["subject.txt"].strip(), letter_html, letter_text, sample=_read_sample(folder)
        )
    return templates


def _read_sample(folder: Path) -> dict | None:
    file = folder / SAMPLE_FILE
    if not file.is_file():
        return None
    try:
        sample = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"letter template {folder.name!r}: {file} is not JSON: {error}") from error
    if not isinstance(sample, dict):
        raise ValueError(f"letter template {folder.name!r}: {file} must hold one JSON object (a personalisation)")
    return sample


@dataclass(frozen=True)
class RenderedLetter:
    subject: str
    html: str
    text: str


def render_letter(template: LetterTemplate, personalisation: dict) -> RenderedLetter:
    """The letter one customer would read: subject, HTML and text filled with their personalisation.

    pybars is a handlebars implementation like SendGrid's, so a preview shows what SendGrid sends
    (values HTML-escaped in both parts, as SendGrid does). SendGrid's own substitution tags
    (`<%asm_group_unsubscribe_raw_url%>`) are not handlebars and stay as they are.
    """
    data = _as_json_numbers(personalisation)
    return RenderedLetter(
        subject=_rendered(template.subject, data),
        html=_rendered(template.html, data),
        text=_rendered(template.text, data),
    )


# A handlebars tag: a comment (which may hold `}}`), a triple-stash, or a plain tag.
_TAG = re.compile(r"\{\{!--.*?--\}\}|\{\{\{.*?\}\}\}|\{\{.*?\}\}", re.S)
# Stands for one run of static text while pybars parses the rest: private-use characters, never in a letter's text.
_STATIC = re.compile("\ue000(\\d+)\ue001")


def _rendered(source: str, data) -> str:
    """The template filled with the personalisation, as pybars renders it; each source is parsed once per process.

    pybars parses character by character: a compiled MJML letter (~20 KB, nearly all static HTML)
    took it about a second per part, ~12 s for every letter type in each new process. So it parses
    a skeleton instead, each run of static text between tags replaced by a numbered stand-in (its
    leading and trailing whitespace kept, which `~` and standalone tags may strip), and the output
    gets the text back. A personalisation holding a stand-in's characters is rendered from the
    whole source, so the result is always what pybars renders from it.
    """
    skeleton, static = _skeleton(source)
    if not static or "\ue000" in json.dumps(data, default=str, ensure_ascii=False):
        return str(_parsed(source)(data))
    return _STATIC.sub(lambda match: static[int(match.group(1))], str(_parsed(skeleton)(data)))


@functools.lru_cache(maxsize=256)
def _skeleton(source: str) -> tuple[str, tuple[str, ...]]:
    """The source with its static text runs replaced by stand-ins, and those runs; no stand-ins when it has `\\{{`."""
    if "\\{{" in source or "\ue000" in source:  # an escaped tag is static text pybars must see
        return source, ()
    pieces, static, position = [], [], 0
    for tag in [*_TAG.finditer(source), None]:
        text = source[position:tag.start() if tag else len(source)]
        core = text.strip()
        if core:
            start = text.index(core)
            pieces.append(f"{text[:start]}\ue000{len(static)}\ue001{text[start + len(core):]}")
            static.append(core)
        else:
            pieces.append(text)
        if tag:
            pieces.append(tag.group(0))
            position = tag.end()
    return "".join(pieces), tuple(static)


@functools.lru_cache(maxsize=256)
def _parsed(source: str):
    import pybars

    return pybars.Compiler().compile(source)


def _as_json_numbers(value):
    """Whole floats as integers: SendGrid's JavaScript prints 15.0 from JSON as "15", Python as "15.0"."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _as_json_numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_as_json_numbers(item) for item in value]
    return value


def render_samples(templates: dict[str, LetterTemplate]) -> dict[str, RenderedLetter]:
    """Every letter type that has a sample.json, rendered with it."""
    return {
        name: render_letter(template, template.sample)
        for name, template in sorted(templates.items())
        if template.sample is not None
    }


@dataclass
class TemplateSyncResult:
    template_ids: dict[str, str]
    created: list[str]
    new_versions: list[str]
    unchanged: list[str]


def _list_dynamic_templates(session: SendGridSession) -> dict[str, dict]:
    query = {"generations": "dynamic", "page_size": 200}
    return {template["name"]: template for page in pages(session, "/v3/templates", query) for template in page}


def sync_templates(session: SendGridSession, templates: dict[str, LetterTemplate]) -> TemplateSyncResult:
    """Create missing templates, add and activate a version when content changed, touch nothing else."""
    existing = _list_dynamic_templates(session)
    result = TemplateSyncResult({}, [], [], [])
    for name, template in sorted(templates.items()):
        remote = existing.get(template.sendgrid_name)
        if remote is None:
            remote = session.request(
                "POST", "/v3/templates", {"name": template.sendgrid_name, "generation": "dynamic"}
            ).body
            result.created.append(name)
        template_id = remote["id"]
        result.template_ids[name] = template_id
        active = [version for version in remote.get("versions") or [] if version.get("active") == 1]
        if active and active[0].get("name") == template.version_name:
            result.unchanged.append(name)
            continue
        version = session.request(
            "POST",
            f"/v3/templates/{template_id}/versions",
            {
                "name": template.version_name,
                "subject": template.subject,
                "html_content": template.html,
                "plain_content": template.text,
                "generate_plain_content": False,
                "editor": "code",
                "active": 1,
            },
        ).body
        version_id = (version or {}).get("id")
        if version_id and not session.dry_run and (version or {}).get("active") != 1:
            session.request("POST", f"/v3/templates/{template_id}/versions/{version_id}/activate")
        if name not in result.created:
            result.new_versions.append(name)
    return result
