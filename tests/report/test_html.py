"""The report, built from a small real run and opened in a real headless browser: every
figure and table is there, nothing errs, the page is not blank, and markup from a spec or
the platform is shown as text."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import matplotlib.image
import pandas as pd
import pytest

from recstack.collect.timing import TimingSettings
from recstack.points import Point
from recstack.report.html import (Report, build_report, default_run_ids, markdown_text,
                                  render_html, write_report)
from recstack.report.sections import NOT_MEASURED
from recstack.store import ResultStore
from recstack.sweep import SweepPlan, run_sweep
from tests import fill
from tests.conftest import small_spec

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
MARKUP_MODEL = "<script>alert(1)</script>"
MARKUP_PLATFORM = "box <img src=x onerror=alert(2)>"
SETTINGS = TimingSettings(warmup_iterations=2, warmup_seconds=0.0, min_seconds=0.05,
                          min_iterations=10, profile_iterations=3)

needs_chromium = pytest.mark.skipif(
    not CHROMIUM.is_file(), reason="no chromium at /usr/bin/chromium (`bash scripts/dev.sh "
    "test` installs it with apt-get on Debian)")


@pytest.fixture(scope="module")
def report_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Report, Path, Path]:
    """A real run (timing and operator profiles) of a small RMC1 and a small DIN named with
    script markup, on a platform described with markup; its report, written."""
    directory = tmp_path_factory.mktemp("report")
    store = ResultStore(directory / "r.duckdb")
    run_id = store.create_run("recstack run <test>", SETTINGS.to_dict(),
                              {"hostname": "<b>host</b>", "torch": "2.x"}, "platform-1",
                              MARKUP_PLATFORM)
    specs = [small_spec("rmc1"), dataclasses.replace(small_spec("din"), name=MARKUP_MODEL)]
    points = [Point(spec, batch, level=level) for spec in specs for batch in (1, 8)
              for level in ("timing", "operators")]
    outcome = run_sweep(SweepPlan(points=tuple(points)), store, run_id, SETTINGS)
    assert not outcome.failed
    report = build_report(store)
    html_path, markdown_path = write_report(report, directory / "report.html",
                                            directory / "report.md")
    return report, html_path, markdown_path


def test_report_has_every_level_or_says_it_was_not_measured(
        report_files: tuple[Report, Path, Path]) -> None:
    report, html_path, markdown_path = report_files
    sections = {s.id: s for s in report.sections}
    assert list(sections) == ["platform", "systems", "cache", "software", "hardware",
                              "correlation", "roofline", "methodology", "findings"]
    assert len(sections["systems"].figures) == 2 and len(sections["software"].figures) == 2
    assert sections["systems"].headline.startswith("Deployment choice: the best")
    # no hardware points, design space or ceilings in this run: said so, never blank
    for absent in ("hardware", "correlation", "roofline"):
        assert not sections[absent].measured
        assert NOT_MEASURED in sections[absent].notes[0]
    page = html_path.read_text()
    assert "<script" not in page and "https://" not in page and "http://" not in page
    assert page.count("data:image/png;base64,") == 4
    summary = markdown_path.read_text()
    assert "## Systems level" in summary and NOT_MEASURED in summary
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in summary and "<script" not in summary
    # The summary embeds the figures, written beside it as PNG files.
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", summary)
    assert len(images) == 4
    for link in images:
        assert (markdown_path.parent / link).read_bytes().startswith(b"\x89PNG")


@needs_chromium
def test_report_in_a_headless_browser(report_files: tuple[Report, Path, Path],
                                      tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    report, html_path, _ = report_files
    expected_figures = sum(len(s.figures) for s in report.sections)
    expected_tables = sum(len(s.tables) for s in report.sections)
    errors: list[str] = []
    dialogs: list[str] = []
    requests: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(html_path.as_uri())
            page.wait_for_load_state("load")
            images = page.locator("figure.report-figure img")
            assert images.count() == expected_figures
            for index in range(expected_figures):  # every figure decoded and drawn
                assert images.nth(index).evaluate("i => i.complete && i.naturalWidth") > 100
            assert page.locator("table.report-table").count() == expected_tables
            for section in report.sections:
                assert page.locator(f"section#{section.id} h2").inner_text() == section.title
            text = page.locator("body").inner_text()
            shot = tmp_path / "report.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert errors == []
    assert dialogs == []
    # the page asks for nothing but itself (figures are data URIs)
    assert [url for url in requests if not url.startswith(("file:", "data:"))] == []
    assert NOT_MEASURED in text
    pixels = matplotlib.image.imread(shot)
    assert pixels.shape[0] > 900 and pixels.std() > 0.05  # not blank, not one colour


@needs_chromium
def test_markup_in_names_is_shown_as_text(report_files: tuple[Report, Path, Path]) -> None:
    from playwright.sync_api import sync_playwright

    _, html_path, _ = report_files
    dialogs: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.goto(html_path.as_uri())
            page.wait_for_load_state("load")
            scripts = page.locator("script").count()
            injected_images = page.locator("img:not(figure.report-figure img)").count()
            text = page.locator("body").inner_text()
        finally:
            browser.close()
    assert dialogs == []
    assert scripts == 0 and injected_images == 0
    assert MARKUP_MODEL in text  # the model's name, visible as typed
    assert MARKUP_PLATFORM in text and "<b>host</b>" in text


def test_markup_is_escaped_in_the_source(report_files: tuple[Report, Path, Path]) -> None:
    _, html_path, _ = report_files
    page = html_path.read_text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(2)&gt;" in page
    assert not re.search(r"<script", page, re.IGNORECASE)


def test_markdown_text_escapes_markup_and_pipes() -> None:
    assert markdown_text("a|b <i>\nc") == "a\\|b &lt;i&gt; c"


def test_default_runs_add_the_newest_run_of_each_missing_level(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "r.duckdb")
    older = store.create_run("hardware", {}, {}, "p", "machine")
    store.record_point(older, "h", fill.point(level="hardware", model="rmc1"),
                       fill.hardware(source="simulated"))
    newer = store.create_run("timing", {}, {}, "p", "machine")
    store.record_point(newer, "t", fill.point(level="timing", model="rmc1"))
    assert default_run_ids(store) == [newer, older]
    assert default_run_ids(store, older) == [older, newer]
    page = render_html(build_report(store, [older]))
    assert "Systems level" in page and NOT_MEASURED in page


def test_a_report_joining_method_versions_or_platforms_says_so(tmp_path: Path) -> None:
    from recstack.records import TimingRecord
    from tests import fill

    store = ResultStore(tmp_path / "r.duckdb")
    here = store.create_run("timing", {}, {}, "p1", "this machine")
    other = store.create_run("timing", {}, {}, "p2", "another machine")
    for run, version in ((here, 1), (other, 2)):
        store.record_point(run, "t", fill.point(level="timing", model="rmc1",
                                                model_type="dlrm", row_scale=1.0,
                                                batch_size=1, device="cpu", threads=1,
                                                backend="eager", method_version=version),
                           TimingRecord(samples=pd.DataFrame({"iteration": [0],
                                                              "latency_ns": [10**6]}),
                                        stats=fill.stats(iterations=1, median_ms=1.0,
                                                         p95_ms=1.0, throughput_per_s=1e3)))
    hardware_here = store.create_run("hardware", {}, {}, "p1", "this machine")
    store.record_point(hardware_here, "h", fill.point(level="hardware", model="rmc1"),
                       fill.hardware(source="simulated"))
    hardware_elsewhere = store.create_run("hardware", {}, {}, "p2", "another machine")
    store.record_point(hardware_elsewhere, "h", fill.point(level="hardware", model="rmc1"),
                       fill.hardware(source="simulated"))
    newest = store.create_run("timing", {}, {}, "p1", "this machine")
    store.record_point(newest, "t", fill.point(level="timing", model="rmc1"),
                       fill.timing(iterations=1, median_ms=1.0, p95_ms=1.0))
    # The default selection takes a missing level from this machine before a newer run of
    # another machine.
    assert default_run_ids(store) == [newest, hardware_here]
    page = render_html(build_report(store, [here, other]))
    assert "several platforms" in page
    assert "different method versions" in page
    assert f"version 1 in run {here}" in page and f"version 2 in run {other}" in page
