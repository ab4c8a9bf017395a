"""Fixtures: fake-but-realistic run directories (no Flower run) and an HTML section parser."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from tests.reports.fake_run import make_run


@pytest.fixture(scope="session")
def runs_root(tmp_path_factory):
    """A folder (the 'started-in' folder) holding a completed run, a stopped run and a sweep."""
    root = tmp_path_factory.mktemp("runs-root")
    make_run(root, "eps3", epsilon=3.0, seed=1)
    make_run(root, "eps1", epsilon=1.0, seed=2)
    make_run(root, "dpoff", dp_enabled=False, seed=3)
    make_run(root, "stopped", status="stopped", seed=4)
    return root


@pytest.fixture(scope="session")
def completed_run(runs_root):
    """A completed run directory with ε = 3."""
    return runs_root / "runs" / "eps3"


class PageParser(HTMLParser):
    """Collects section ids, image sources and external references of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.section_ids: list[str] = []
        self.img_src: list[str] = []
        self.external: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section" and attrs.get("id"):
            self.section_ids.append(attrs["id"])
        if tag == "img":
            self.img_src.append(attrs.get("src", ""))
        for key in ("src", "href"):
            value = attrs.get(key) or ""
            if value and not value.startswith(("data:", "#")):
                self.external.append(f"<{tag} {key}={value[:60]}>")
        if tag in ("link", "script", "iframe", "object"):
            self.external.append(f"<{tag}>")

    def handle_data(self, data):
        self.text.append(data)


def parse_page(html: str) -> PageParser:
    """Parse an HTML page."""
    parser = PageParser()
    parser.feed(html)
    return parser
