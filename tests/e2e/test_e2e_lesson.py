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

    def no_answer_shown() -> None:
        for fig in (".hvae-question-then", ".hvae-toy-fig", ".hvae-layer-terms-fig"):
            assert page.locator(fig).count() == 0, f"{fig} is shown before its question's reveal"

    # ask before telling: no figure that shows an answer is on the page before its reveal
    no_answer_shown()
    # while the student reads, the answers' figures (in the page's widgets, without a view) are
    # drawn once off screen, cut to 3 points a trace, and removed (live_figure.js: the reveal then
    # draws with warm code); one warm-up per such figure
    page.wait_for_function(
        "() => window.hvaelabWarmUps >= 1 && !document.querySelector('.hvae-warm-up')",
        timeout=30_000,
    )
    no_answer_shown()
    questions = page.locator(".hvae-question")
    first = questions.nth(0)
    answer = first.locator(".hvae-question-answer")
    assert answer.inner_text().strip() == "", "the answer must wait for the click"
    first.locator(".hvae-question-choice button", has_text="FashionMNIST (its own kind)").click()
    first.locator(".hvae-question-reveal").click()
    page.wait_for_function(
        "(el) => el.innerText.includes('Answer:')", arg=answer.element_handle(), timeout=30_000
    )
    assert "✘ Not quite." in answer.inner_text()
    # the reveal follows the choice: the right one now says so
    first.locator(".hvae-question-choice button", has_text="MNIST (never seen)").click()
    page.wait_for_function(
        "(el) => el.innerText.includes('Right.')", arg=answer.element_handle(), timeout=30_000
    )
    text = answer.inner_text()
    assert "✔ Right." in text and "Not quite" not in text, text
    assert "Answer: MNIST (never seen)." in text, text
    assert f"{ood_bpd:.3f} bits/dim" in text and f"{in_bpd:.3f} bits/dim" in text, text
    assert first.locator(".hvae-question-reveal").is_disabled()
    first.locator(".hvae-question-then").first.wait_for(timeout=30_000)  # the ELBO densities
    # the toy and the layer terms come with their questions' answers
    for i, choice, fig in ((1, "the OOD set", ".hvae-toy-fig"), (2, None, ".hvae-layer-terms-fig")):
        q = questions.nth(i)
        if choice:
            q.locator(".hvae-question-choice button", has_text=choice).click()
        q.locator(".hvae-question-reveal").click()
        page.locator(fig).first.wait_for(timeout=UPDATE_TIMEOUT_MS)

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
