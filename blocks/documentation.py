"""Where a Block's page in the Prefect UI links to: its section of the project's README, and the project's logo.

Both live in the project's repository (the logo is `dashboard/favicon.png`, 64×64), so `REPOSITORY` is the one line to
change for a fork; the UI loads the logo when the page is opened, and nothing here is fetched by Vigia itself."""

import re

REPOSITORY = "https://github.com/vigia/vigia"
README_URL = f"{REPOSITORY}/blob/main/README.md"
LOGO_URL = f"{REPOSITORY}/raw/main/dashboard/favicon.png"


def heading_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading: lower case, punctuation dropped, spaces as dashes."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def readme_section(heading: str) -> str:
    """The link to the README section titled `heading`."""
    return f"{README_URL}#{heading_anchor(heading)}"
