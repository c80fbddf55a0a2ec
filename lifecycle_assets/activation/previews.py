"""Letter previews a marketer can look at: each letter type filled with its sample.json, as an HTML
file and as screenshots taken in a real headless browser at a desktop and a phone width.

The HTML files are cheap (handlebars only) and written with every sync of the templates. The
screenshots start chromium (a few seconds for all letter types), so they are taken on request:
`make previews` (`python -m lifecycle_assets.activation.previews`). Each screenshot records the
hash of the HTML it shows (`screenshots.json`); the templates asset links a screenshot only while
it still shows the current letter, and otherwise says to take them again.

The browser is offline: catalogue images are drawn as grey placeholders of the same size, and no
other request leaves the machine.
"""

from __future__ import annotations

import argparse
import hashlib
import html
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from lifecycle_assets import environment
from lifecycle_assets.activation.templates import LetterTemplate, load_templates, render_samples

# A desktop mail client's reading pane, and a phone (iPhone SE / 13 mini width).
WIDTHS = {"desktop": 900, "phone": 375}
SCREENSHOT_MANIFEST = "screenshots.json"  # screenshot -> hash of the HTML it shows
PREVIEW_MANIFEST = "previews.json"  # letter type -> hash of its template and sample, and of its HTML


@dataclass(frozen=True)
class LetterPreview:
    name: str
    html_file: Path
    html_bytes: int
    html_hash: str
    # width name -> PNG, only screenshots taken of this very HTML
    screenshots: dict[str, Path]


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def write_html_previews(templates: dict[str, LetterTemplate], directory: Path) -> dict[str, LetterPreview]:
    """`<letter type>.html` per letter type with a sample, and which screenshots still show it.

    A letter is rendered again only when its template or sample changed (`previews.json`): pybars
    takes about half a second of CPU per compiled letter, which a push should not pay every time.
    """
    directory.mkdir(parents=True, exist_ok=True)
    shots_taken = _read_manifest(directory / SCREENSHOT_MANIFEST)
    written = _read_manifest(directory / PREVIEW_MANIFEST)
    sources = {
        name: _hash(template.content_hash + json.dumps(template.sample, sort_keys=True))
        for name, template in templates.items()
        if template.sample is not None
    }
    stale = {name for name, source in sources.items() if (written.get(name) or {}).get("source") != source}
    stale |= {name for name in sources if not (directory / f"{name}.html").is_file()}
    for name, letter in render_samples({name: templates[name] for name in stale}).items():
        _write_atomically(directory / f"{name}.html", letter.html)
        written[name] = {"source": sources[name], "html": _hash(letter.html)}
    if stale:
        _write_atomically(directory / PREVIEW_MANIFEST, json.dumps(written, indent=2, sort_keys=True))
    previews = {}
    for name in sorted(sources):
        file = directory / f"{name}.html"
        digest = written[name]["html"]
        screenshots = {
            width: directory / f"{name}-{width}.png"
            for width in WIDTHS
            if shots_taken.get(f"{name}-{width}") == digest and (directory / f"{name}-{width}.png").is_file()
        }
        previews[name] = LetterPreview(name, file, file.stat().st_size, digest, screenshots)
    return previews


def _write_atomically(file: Path, content: str) -> None:
    temporary = file.with_name(file.name + ".tmp")
    temporary.write_text(content, encoding="utf-8")
    temporary.replace(file)


def _read_manifest(file: Path) -> dict:
    if not file.is_file():
        return {}
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return {}  # a torn manifest only means the previews are made again


def _placeholder_image(url: str) -> bytes:
    label = html.escape(url.rsplit("/", 1)[-1][:24])
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" width="280" height="280" viewBox="0 0 280 280">'
        '<rect width="280" height="280" fill="#d9dde3"/>'
        f'<text x="140" y="146" font-family="Helvetica, Arial, sans-serif" font-size="18" fill="#5a6270" '
        f'text-anchor="middle">{label}</text></svg>'
    ).encode("utf-8")


def serve_offline(route) -> None:
    """Images get a placeholder; nothing else leaves the machine."""
    if route.request.resource_type == "image":
        route.fulfill(status=200, content_type="image/svg+xml", body=_placeholder_image(route.request.url))
    else:
        route.abort()


def take_screenshots(previews: dict[str, LetterPreview], chromium: Path | None = None) -> dict[str, LetterPreview]:
    """Full-page PNGs of every preview at each width in WIDTHS, from headless chromium."""
    from playwright.sync_api import sync_playwright

    chromium = chromium or environment.chromium_path()
    if not chromium.exists():
        raise FileNotFoundError(
            f"{chromium} is missing: run scripts/install-browser as root (or set LIFECYCLE_CHROMIUM) to take screenshots"
        )
    if not previews:
        return previews
    directory = next(iter(previews.values())).html_file.parent
    taken = _read_manifest(directory / SCREENSHOT_MANIFEST)
    updated = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=["--no-sandbox", "--disable-gpu"])
        try:
            for width_name, width in WIDTHS.items():
                context = browser.new_context(viewport={"width": width, "height": 800})
                context.route(re.compile(r"^(https?|ftp)://"), serve_offline)
                page = context.new_page()
                for name, preview in sorted(previews.items()):
                    page.goto(preview.html_file.resolve().as_uri())
                    target = directory / f"{name}-{width_name}.png"
                    page.screenshot(path=str(target), full_page=True)
                    taken[f"{name}-{width_name}"] = preview.html_hash
                context.close()
        finally:
            browser.close()
    _write_atomically(directory / SCREENSHOT_MANIFEST, json.dumps(taken, indent=2, sort_keys=True))
    for name, preview in previews.items():
        shots = {width_name: directory / f"{name}-{width_name}.png" for width_name in WIDTHS}
        updated[name] = LetterPreview(preview.name, preview.html_file, preview.html_bytes, preview.html_hash, shots)
    return updated


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=None, help="folder for the previews (default: LIFECYCLE_PREVIEWS_DIR)")
    parser.add_argument("--letter", action="append", default=[], help="only this letter type (repeatable)")
    parser.add_argument("--no-screenshots", action="store_true", help="write the HTML files only")
    arguments = parser.parse_args(argv)
    directory = arguments.out or environment.previews_dir()
    templates = load_templates()
    if arguments.letter:
        unknown = sorted(set(arguments.letter) - set(templates))
        if unknown:
            parser.error(f"no such letter type: {', '.join(unknown)} (known: {', '.join(sorted(templates))})")
        templates = {name: templates[name] for name in arguments.letter}
    previews = write_html_previews(templates, directory)
    if not arguments.no_screenshots:
        previews = take_screenshots(previews)
    for name, preview in sorted(previews.items()):
        shots = ", ".join(str(path) for path in preview.screenshots.values()) or "no screenshots"
        print(f"{name}: {preview.html_file} ({preview.html_bytes:,} bytes); {shots}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
