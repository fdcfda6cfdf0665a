"""The teaching page as a lesson, in Chromium: a question answered on click with the shipped
model's numbers, and the 2-D toy whose likelihood turns against the OOD set as D grows."""

from __future__ import annotations

import pytest
from harness import PAGES, figure_data, screenshot, slider_handle

from hvaelab.app import lesson

pytestmark = pytest.mark.e2e
UPDATE_TIMEOUT_MS = 60_000


def test_lesson_asks_then_tells_and_the_toy_follows_its_knob(open_dashboard, screenshots):
    page, guard = open_dashboard(PAGES["teaching"])
    data = lesson.lesson_data("fashionmnist")  # what the page's kernel reads, from the same files
    in_bpd, ood_bpd = (lesson.bits_per_dim(t) for t in data.s1)

    first = page.locator(".hvae-question").first
    answer = first.locator(".hvae-question-answer")
    assert answer.inner_text().strip() == "", "the answer must wait for the click"
    first.locator(".hvae-question-choice button", has_text="MNIST (never seen)").click()
    first.locator(".hvae-question-reveal").click()
    page.wait_for_function(
        "(el) => el.innerText.includes('Answer:')", arg=answer.element_handle(), timeout=30_000
    )
    text = answer.inner_text()
    assert "✔ Right." in text and "Answer: MNIST (never seen)." in text, text
    assert f"{ood_bpd:.3f} bits/dim" in text and f"{in_bpd:.3f} bits/dim" in text, text
    assert first.locator(".hvae-question-reveal").is_disabled()

    info = page.locator(".hvae-toy-info")
    before = info.inner_text()
    assert "the likelihood flags the OOD set" in before, before  # D = 1
    assert figure_data(page, ".hvae-toy-fig"), "the toy's figure has no traces"
    handle = slider_handle(page, "hvae-toy-details")
    handle.scroll_into_view_if_needed()
    handle.focus()
    for _ in range(4):  # D: 1 -> 2 -> 4 -> 8 -> 16
        handle.press("ArrowRight")
    page.wait_for_function(
        "(el) => el.innerText.includes('prefers')",
        arg=info.element_handle(),
        timeout=UPDATE_TIMEOUT_MS,
    )
    page.wait_for_function(
        "() => [...document.querySelectorAll('.hvae-toy-fig .gtitle, .hvae-toy-fig "
        ".annotation-text')].some((t) => t.textContent.includes('D = 16'))",
        timeout=UPDATE_TIMEOUT_MS,
    )
    for figure in (".hvae-layer-terms-fig", ".hvae-gap-fig"):
        assert figure_data(page, figure), f"no traces in {figure}"
    screenshot(page, screenshots / "05_lesson_after_answers.png")
    guard.assert_clean()
