"""The page in a real browser: headless Debian Chromium driven by selenium (both installed by install.sh).

Signs in, waits for the video to play, labels three tasks with the keyboard (one pairwise, one
refused for a missing reason first), and finds the rows in the store and in the exported labels
table. Then opens the disagreement view (critic verdicts stored beside the labels), checks the order
and the escaping, and queues a relabel. Screenshots are kept in the test's folder and copied to
runs/test-artifacts/annotate/.
"""

import dataclasses
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ipo_ray.annotate.aggregate import aggregate, write_export
from ipo_ray.annotate.records import CriticVerdict
from ipo_ray.annotate.store import Store
from ipo_ray.data import TableKind, read_table
from ipo_ray.data import columns as col

from .conftest import WorldSet, live_server, settings_for

pytestmark = pytest.mark.timeout(120)

ARTIFACTS = Path(__file__).resolve().parents[2] / "runs" / "test-artifacts" / "annotate"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
EVIL = (
    "<img src=x onerror=\"document.title='pwned'\"> A small red circle glides slowly to the left, leaving a "
    "faint trail behind it, while the dark blue background stays calm and even for the whole clip."
)


@pytest.fixture
def browser() -> Iterator[object]:
    for binary in (CHROMIUM, CHROMEDRIVER):
        if not Path(binary).is_file():
            pytest.fail(
                f"{binary} is missing: run install.sh (it installs Debian's chromium and chromium-driver)"
            )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1200,1150",
        "--autoplay-policy=no-user-gesture-required",
        "--disable-gpu",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(check: Callable[[], object], what: str, timeout_s: float = 15.0) -> object:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_label_three_tasks_with_the_keyboard(browser, world_set: WorldSet, tmp_path: Path) -> None:  # noqa: ANN001
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    pair = next(t for t in world_set.tasks if t.kind == "pairwise")
    clip0, clip1 = world_set.tasks[0], world_set.tasks[1]
    (tmp_path / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypisom truncated")
    broken = dataclasses.replace(clip1, task_id="pt-broken", video_path=str(tmp_path / "broken.mp4"))
    queue = [clip0, pair, dataclasses.replace(clip1, prompt=EVIL), broken]
    store = Store(tmp_path / "studio.db")
    store.add_tasks([dataclasses.replace(t, needed=1) for t in queue])
    shots = tmp_path / "screenshots"
    shots.mkdir()

    def keys(*sequence: str) -> None:
        ActionChains(browser).send_keys(*sequence).perform()

    def shot(name: str) -> None:
        browser.save_screenshot(str(shots / f"{name}.png"))

    def task_id() -> str:
        return browser.execute_script("return state.task && state.task.task_id")

    def playing() -> bool:
        return browser.execute_script(
            "const v = [...document.querySelectorAll('#videos video, .card video')];"
            "return v.length > 0"
            "  && v.every((x) => x.readyState >= 2 && x.currentTime > 0 && x.videoWidth >= 64);"
        )

    with live_server(settings_for(tmp_path)) as url:
        browser.get(url)
        shot("0-sign-in")
        browser.find_element(By.ID, "name").send_keys("tester", Keys.ENTER)
        wait_for(lambda: task_id() == clip0.task_id, "the first task")
        wait_for(playing, "the video to play")
        assert browser.find_element(By.ID, "progress-text").text == "0 / 4 done"

        # Task 1, pointwise: a Bad needs a reason; submitting without one is refused by the page.
        keys("1", "6")
        assert browser.switch_to.active_element.get_attribute("class").startswith("reason")
        keys(Keys.ESCAPE, "7", Keys.ENTER)
        message = wait_for(lambda: browser.find_element(By.ID, "message").text, "the missing-reason message")
        assert "Motion smoothness: a reason is required" in message
        assert store.labels() == []
        shot("1-missing-reason")
        reason = browser.find_elements(By.CSS_SELECTOR, "fieldset.dimension .reason")[1]
        reason.send_keys("The square jumps between frames.", Keys.ENTER)
        keys(Keys.ENTER)

        # Task 2, pairwise: both videos play; A / tie / B with reasons.
        wait_for(lambda: task_id() == pair.task_id, "the pairwise task")
        wait_for(playing, "both videos to play")
        assert len(browser.find_elements(By.CSS_SELECTOR, "#videos video")) == 2
        keys("1", "Video B has the wrong colour.", Keys.ENTER, "5", "9", "Video A is blurred.", Keys.ENTER)
        shot("2-pairwise")
        keys(Keys.ENTER)

        # Task 3: the prompt carries markup, which must be shown as text, never run.
        wait_for(lambda: task_id() == queue[2].task_id, "the third task")
        wait_for(playing, "the third video to play")
        prompt = browser.find_element(By.ID, "prompt")
        assert prompt.text.startswith("<img src=x") and not prompt.find_elements(By.TAG_NAME, "img")
        shot("3-escaped-prompt")
        keys("1", "4", "7", Keys.ENTER)

        # Task 4: its video cannot be loaded; the page says so and S skips it with the problem recorded.
        wait_for(lambda: task_id() == "pt-broken", "the broken task")
        message = wait_for(lambda: browser.find_element(By.ID, "message").text, "the video problem")
        assert "video A failed to load" in message
        shot("4-broken-video")
        keys("s")
        wait_for(lambda: browser.find_element(By.ID, "done").is_displayed(), "the done panel")
        assert browser.find_element(By.ID, "progress-text").text == "3 / 3 done"
        assert browser.title != "pwned"
        shot("5-done")

        # The disagreement view: the critic differs on two rows; the surer one comes first.
        store.put_critic_verdicts(
            [
                CriticVerdict(clip0.task_id, "faithfulness", "v7", "Bad", EVIL, 0.75, {"Bad": 6, "Good": 2}),
                CriticVerdict(
                    pair.task_id, "semantic_consistency", "v7", "B", "Video B matches.", 1.0, {"B": 8}
                ),
            ]
        )
        browser.find_element(By.ID, "to-review").click()
        cards = wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "article.card"), "the disagreements")
        assert [c.get_attribute("data-task") for c in cards] == [pair.task_id, clip0.task_id]
        assert cards[1].find_element(By.CSS_SELECTOR, ".critic .reason").text.startswith("<img src=x")
        assert not browser.find_elements(By.CSS_SELECTOR, "article.card img")
        wait_for(playing, "the disagreement videos to play")
        shot("6-disagreements")
        cards[0].find_element(By.CSS_SELECTOR, "button.relabel").click()
        wait_for(
            lambda: cards[0].find_element(By.CSS_SELECTOR, "button.relabel").text == "Queued for relabelling",
            "the relabel",
        )
        assert store.tasks()[0].task_id == f"review-{pair.task_id}"
        assert browser.title != "pwned"

    stored = {
        (x.task_id, x.dimension): (x.answer, x.reason) for x in store.labels() if x.annotator == "tester"
    }
    assert stored == {
        (clip0.task_id, "semantic_consistency"): ("Good", ""),
        (clip0.task_id, "motion_smoothness"): ("Bad", "The square jumps between frames."),
        (clip0.task_id, "faithfulness"): ("Good", ""),
        (pair.task_id, "semantic_consistency"): ("A", "Video B has the wrong colour."),
        (pair.task_id, "motion_smoothness"): ("tie", ""),
        (pair.task_id, "faithfulness"): ("B", "Video A is blurred."),
        (queue[2].task_id, "semantic_consistency"): ("Good", ""),
        (queue[2].task_id, "motion_smoothness"): ("Good", ""),
        (queue[2].task_id, "faithfulness"): ("Good", ""),
    }
    assert all(x.seconds > 0 for x in store.labels())
    (skipped,) = store.skips()
    assert skipped.task_id == "pt-broken" and skipped.problem.startswith(
        "video A failed to load: video a: not a readable video"
    )
    assert str(tmp_path) not in skipped.problem  # server paths are not shown to annotators
    write_export(aggregate(store), tmp_path / "export")
    table = read_table(tmp_path / "export" / "annotations.parquet", TableKind.LABELS).to_pylist()
    assert {(r[col.KIND], r[col.VERDICT]) for r in table if r[col.ANNOTATOR] == "tester"} == {
        ("pointwise", "Good"),
        ("pointwise", "Bad"),
        ("pairwise", "A"),
        ("pairwise", "tie"),
        ("pairwise", "B"),
    }
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for png in shots.glob("*.png"):
        shutil.copy(png, ARTIFACTS / png.name)
