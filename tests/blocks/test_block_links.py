"""Every Block's page in the Prefect UI links to a README section that exists, and shows the project's logo."""

import importlib
import pkgutil
import re
from pathlib import Path

from prefect.blocks.core import Block

import blocks
from blocks.documentation import LOGO_URL, README_URL, heading_anchor

ROOT = Path(__file__).resolve().parents[2]


def vigia_blocks() -> list[type[Block]]:
    """Every Block class defined in blocks/."""
    found = []
    for module_info in pkgutil.iter_modules(blocks.__path__):
        module = importlib.import_module(f"blocks.{module_info.name}")
        found += [
            value
            for value in vars(module).values()
            if isinstance(value, type) and issubclass(value, Block) and value.__module__ == module.__name__
        ]
    return found


def readme_anchors() -> set[str]:
    return {heading_anchor(match) for match in re.findall(r"^#{1,4} (.+)$", (ROOT / "README.md").read_text(), flags=re.MULTILINE)}


def test_every_blocks_documentation_url_is_a_readme_section_that_exists():
    found = vigia_blocks()
    assert len(found) == 7
    anchors = readme_anchors()
    for block in found:
        page, _, anchor = str(block._documentation_url).partition("#")
        assert (page, anchor in anchors) == (README_URL, True), (block.__name__, anchor)


def test_github_anchors_as_the_readme_headings_get_them():
    assert heading_anchor("The bot's own service") == "the-bots-own-service"
    assert heading_anchor("The `vigia` command") == "the-vigia-command"
    assert {"settings-and-blocks", "alerts", "transcription"} <= readme_anchors()


def test_every_block_has_the_projects_small_logo_from_the_repository():
    assert {str(block._logo_url) for block in vigia_blocks()} == {LOGO_URL}
    assert LOGO_URL.endswith("/dashboard/favicon.png")
    assert (ROOT / "dashboard" / "favicon.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
