"""The interactive report in a real browser (headless Debian Chromium driven by Selenium), and
its payload without one.

The browser tests skip when /usr/bin/chromium, /usr/bin/chromedriver or selenium is missing,
unless INITLAB_REQUIRE_BROWSER=1 (set by .ci/run, which installs Chromium): then they fail.
No timed assertions: waits only bound how long a condition may take to become true.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from initlab.api import resolve
from initlab.config.schema import load_config
from initlab.experiment import run_experiment
from initlab.report import interactive
from initlab.report.render import write_result
from initlab.results.folder import json_safe

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1280,2000")


@pytest.fixture(scope="module")
def playground(tmp_path_factory):
    """configs/playground.yaml, reduced (300 epochs, 2 seeds), written as a results folder."""
    cfg = load_config(ROOT / "configs" / "playground.yaml",
                      overrides=["train.epochs=300", "seeds=2"])
    result = run_experiment(resolve(cfg))
    result.summary = json_safe(result.summary)
    folder = write_result(result, tmp_path_factory.mktemp("pg") / "playground", plots=False)
    return result, folder


# ---------------------------------------------------------------- without a browser

def test_boundary_frames_are_recorded_and_match_the_final_boundary(playground):
    result, _ = playground
    a = result.arrays
    frames, steps = a["boundary_frames"], a["boundary_steps"]
    assert frames.dtype == np.uint8 and frames.shape[1:] == (4, 41, 41)
    assert steps[0] == 0 and steps[-1] == result.summary["steps"]
    assert len(steps) <= 62 and np.all(np.diff(steps) > 0)
    # the last frame is the final boundary on the coarse grid: both grids span the data's
    # extent, 41 and 101 points, so every second frame point is every fifth fine point
    coarse, grid = a["boundary_frames_grid"], a["boundary_grid"]
    assert coarse[0] == grid[0] and coarse[-1] == grid[-1]
    fine = np.arange(0, 101, 5)
    assert np.allclose(coarse[::2], grid[fine])
    final = a["boundary"][:, fine][:, :, fine]
    ok = np.isfinite(final)
    assert np.abs(frames[-1][:, ::2, ::2][ok] / 254 - final[ok]).max() < 0.003
    zero = result.summary["variants"][0]
    assert zero["label"] == "zero" and np.all(frames[:, 0] == 127)  # P = 0.5 everywhere


def test_payload_is_small_strict_json_and_script_safe(playground):
    result, folder = playground
    data = interactive.payload(result)
    assert data is not None
    text = interactive._script_json(data)
    json.loads(text)
    assert "<" not in text and ">" not in text and "&" not in text
    assert interactive._script_json({"l": "</script><script>x</script>"}).count("<") == 0
    page = (folder / "report.html").read_text()
    assert len(page) < 3_000_000
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)  # nothing external


def test_no_interactive_section_without_statistics(playground):
    result, _ = playground
    from initlab.results.folder import Result

    assert interactive.section(Result(result.config, result.summary, {})) == ""


# ---------------------------------------------------------------- in Chromium

def _driver(tmp_path):
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).exists()]
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        missing.append("the selenium package (pip install -e '.[test]')")
    if missing:
        reason = ("browser test needs " + ", ".join(missing)
                  + " (apt-get install chromium chromium-driver; .ci/run installs them)")
        if os.environ.get("INITLAB_REQUIRE_BROWSER") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)


def _canvas(d, css: str) -> str:
    return d.execute_script(f"return document.querySelector({css!r}).toDataURL()")


def test_playground_report_in_chromium(playground, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    _, folder = playground
    d = _driver(tmp_path)
    try:
        d.get((folder / "report.html").as_uri())
        out = d.find_element(By.ID, "ip-step")
        slider = d.find_element(By.ID, "ip-slider")
        assert out.get_attribute("data-step") == "0"
        assert slider.get_attribute("aria-valuetext") == out.text == "step 0 of 300"
        buttons = d.find_elements(By.CSS_SELECTOR, "#ip-variants button")
        assert [b.text for b in buttons] == ["zero", "too_small", "appropriate", "too_large"]
        assert buttons[0].get_attribute("aria-pressed") == "true"

        # switch the variant: the pressed button, the boundary and the histograms change
        before = {c: _canvas(d, c) for c in ("#ip-boundary", "#ip-hist", "#ip-loss")}
        buttons[2].click()
        assert buttons[2].get_attribute("aria-pressed") == "true"
        assert buttons[0].get_attribute("aria-pressed") == "false"
        after = {c: _canvas(d, c) for c in before}
        assert all(after[c] != before[c] for c in before), "variant switch changed nothing"
        assert "appropriate" in d.find_element(By.ID, "ip-status").text

        # move the slider with the keyboard: the shown step, boundary and histograms change
        slider.send_keys(Keys.END)
        end_step = int(out.get_attribute("data-step"))
        assert end_step == 300 and out.text == "step 300 of 300"
        moved = {c: _canvas(d, c) for c in before}
        assert all(moved[c] != after[c] for c in before), "slider move changed nothing"
        slider.send_keys(Keys.HOME, Keys.ARROW_RIGHT, Keys.ARROW_RIGHT)
        assert int(out.get_attribute("data-step")) == 20  # measure.every = 10

        # play advances the step by itself; pause stops it
        play = d.find_element(By.ID, "ip-play")
        play.click()
        assert play.get_attribute("aria-pressed") == "true"
        WebDriverWait(d, 30).until(lambda _: int(out.get_attribute("data-step")) > 40)
        play.click()
        assert play.get_attribute("aria-pressed") == "false"

        # offline: every resource the page loaded is the page itself or a data: URL
        urls = d.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name)")
        assert all(u.startswith("data:") for u in urls), urls
        d.save_screenshot(str(tmp_path / "playground.png"))
        assert (tmp_path / "playground.png").stat().st_size > 10_000
        errors = [e for e in d.get_log("browser") if e.get("level") == "SEVERE"]
        assert not errors, errors
    finally:
        d.quit()
        shutil.rmtree(tmp_path / "chromium-profile", ignore_errors=True)


def test_animate_writes_a_gif_of_histograms_for_non_2d_data(tmp_path):
    from fakes import fake_result
    from PIL import Image

    from initlab.report.animate import write_gif

    result = fake_result(variants=2, seeds=1, layers=3, epochs=4, two_d=False,
                         task="multiclass")
    path = write_gif(result, tmp_path / "training.gif")
    assert path is not None
    with Image.open(path) as im:
        assert im.format == "GIF" and im.n_frames == len(result.arrays["stat_steps"])
