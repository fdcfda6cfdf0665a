"""Serving a class: the kernel manager behind ``hvaelab dashboard`` (``make dashboard``).

Voila runs one Python kernel per open page (~370 MB each here). ``hvaelab dashboard``
(:mod:`hvaelab.app.dashboard`, whose flags set the numbers below) serves with

* **preheated kernels**: Voila keeps ``pool_size`` kernels per page that have already run the
  notebook, so a page opens without waiting for it; a taken kernel is replaced ``fill_delay``
  seconds later, after the visitor's first interactions rather than during them;
* **culling**: the kernel of a page that was closed or left (no browser connection) and idle for
  ``cull_idle_timeout`` seconds is shut down (jupyter_server's culler, checked every
  ``cull_interval`` seconds); an open page, however idle, keeps its kernel;
* **a cap**: at most ``max_kernels`` visitors' kernels at once; past it a visitor gets a
  "busy, try again in a minute" page (HTTP 503) instead of the server running out of memory;
* **a waiting line**: the busy page gives the visitor a place in line (:class:`WaitingLine`,
  kept by a cookie of a random id), and a place that frees up goes to the first in line when
  they try again, not to whoever asks first; who has not tried again for
  ``line_forget_seconds`` (60 s) has given up.

:class:`ClassroomKernelManager` adds the last two points' exceptions to jupyter_server's kernel
manager: the culler never shuts down a preheated kernel still waiting in the pool, nor a
visitor's kernel whose page has not connected yet (for ``first_connect_timeout``, 3 minutes: on a
loaded machine a page can take longer than the cull timeout to load, and a kernel culled then
leaves the student a dead page), and the cap counts visitors' kernels only. So the server holds
at most ``max_kernels`` + (pool size x pages) kernels whatever the number of visits.

A kernel that dies (the out-of-memory killer's SIGKILL) stays dead: jupyter_server's restarter
would start it again under the same id, empty, and the page would sit on a kernel that holds
none of its widgets. Here the restarter gives up at once (``restart_limit`` 0), the dead kernel
is removed (its visitor's place is free at once) and its page, told "dead", asks the visitor to
reload (the template's connection banner, share/jupyter/voila/templates/hvaelab/index.html.j2).
A preheated kernel that dies in the pool is dropped from it and replaced, and the pool is
checked again just before it hands a kernel out: a visitor never gets an empty kernel.

A page that is closed or left frees its place at once, not only when the culler comes by. Voila's
page sends ``POST /voila/api/shutdown/<kernel>`` as it unloads (``navigator.sendBeacon``), with
the ``_xsrf`` form field read from the ``_xsrf`` cookie; but Voila's page handler never sets that
cookie, so the beacon carried an empty field and was refused with 403 (voila-dashboards/voila
#1458), and the kernel lived on until culled. :class:`PageHandler` sets the cookie with the page
(the XSRF check stays as it is), and :class:`ClassroomVoila`, the application ``hvaelab
dashboard`` runs (``python -m hvaelab.app.serving``), serves its pages with it.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from functools import cached_property
from typing import Any

from jupyter_server._tz import utcnow
from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager
from tornado.web import HTTPError
from traitlets import Dict, Integer, Set
from voila.app import Voila
from voila.tornado.handler import TornadoVoilaHandler

BUSY_REASON = "Busy"
_BACKGROUND: set[asyncio.Future] = set()
BUSY_MESSAGE = (
    "All %d places of this server are taken. Please try again in a minute or two: places free "
    "up when other visitors close their pages."
)
IN_LINE_MESSAGE = (
    "All %d places of this server are taken. You are number %d in line. Please try again (reload "
    "this page) within %d seconds to keep your place: places free up when other visitors close "
    "their pages, and each goes to the first in line."
)
VISITOR_COOKIE = "hvaelab_visitor"  # who is in the waiting line: a random id, nothing else
_VISITOR_ID = re.compile(r"[0-9a-f]{32}")


class WaitingLine:
    """Visitors waiting for a place at the cap, first come, first served.

    At the cap a visitor gets the busy page and a place in this line. A place that frees up goes
    to the first in line when they come back (their next try), not to whoever asks first: in a
    30-student hour without the line, 29 students got in and one, who kept trying for 10
    minutes, never did (the places went to students moving between pages). A visitor who has
    not asked for ``forget_s`` seconds has given up and leaves the line. Times are the caller's
    (``time.monotonic()`` in the server)."""

    def __init__(self, forget_s: float = 60.0) -> None:
        self.forget_s = forget_s
        self._waiting: dict[str, float] = {}  # visitor -> when last asked, in order of arrival

    def __len__(self) -> int:
        return len(self._waiting)

    def ask(self, visitor: str, free: int, now: float) -> int:
        """``visitor`` asks for a page with ``free`` places free: 0 to come in (leaving the
        line), else their place in line (1: next)."""
        self._waiting = {
            v: t for v, t in self._waiting.items() if v == visitor or now - t <= self.forget_s
        }
        order = list(self._waiting)
        ahead = order.index(visitor) if visitor in self._waiting else len(order)
        if free > ahead:
            self._waiting.pop(visitor, None)
            return 0
        self._waiting[visitor] = now  # a visitor already in line keeps their place
        return ahead + 1

    def put_first(self, visitor: str, now: float) -> None:
        """``visitor`` was let in but refused a place after all (another start took it first):
        they are first in line."""
        rest = {v: t for v, t in self._waiting.items() if v != visitor}
        self._waiting = {visitor: now, **rest}


class ClassroomKernelManager(AsyncMappingKernelManager):
    """Voila's kernel manager with a cap on visitors' kernels and a culler that spares the
    preheated pool (see the module docstring)."""

    max_kernels = Integer(
        12,
        config=True,
        help="Most kernels of visitors' pages at once (preheated kernels not counted); past it a "
        "visitor gets a 'busy, try again' page.",
    )

    first_connect_timeout = Integer(
        180,
        config=True,
        help="Seconds a visitor's page may take to connect to its kernel before the culler may "
        "treat the kernel as abandoned (on a loaded machine a page can take longer than the "
        "cull timeout to load).",
    )

    line_forget_seconds = Integer(
        60,
        config=True,
        help="Seconds after which a visitor in the waiting line who has not tried again is "
        "taken to have given up.",
    )

    _seen_pooled = Set()  # pooled at the last look: a kernel that left the pool went to a visitor
    _connected = Set()  # kernels that a page has connected to at least once
    _handed_out = Dict()  # when each kernel was started or left the pool, whichever is later
    _starting = 0  # visitors' kernels being started (in no list of kernels until they are up)

    def pooled_kernel_ids(self) -> set[str]:
        """Kernels started for Voila's preheated pool and not yet given to a visitor."""
        ids = set()
        for pool in getattr(self, "_pools", {}).values():  # set by Voila's preheat subclass
            for task in pool:
                if task.done() and not task.cancelled() and task.exception() is None:
                    ids.add(task.result().get("kernel_id"))
        return ids

    def _note_handed_out(self) -> set[str]:
        """The pool now; kernels that left it since the last look were just given to a visitor,
        whose page has not connected yet: their idle time starts now, so that the culler does
        not shut down a page while it opens (a preheated kernel may have idled for long)."""
        pooled = self.pooled_kernel_ids()
        for kernel_id in self._seen_pooled - pooled:
            kernel = self._kernels.get(kernel_id)
            if kernel is not None:
                kernel.last_activity = self._handed_out[kernel_id] = utcnow()
        self._seen_pooled = pooled
        return pooled

    def notify_connect(self, kernel_id: str) -> None:
        super().notify_connect(kernel_id)
        self._connected.add(kernel_id)

    def _waiting_for_its_page(self, kernel_id: str) -> bool:
        """Given to a page that has not connected yet, less than ``first_connect_timeout`` ago:
        the page is still loading (30 students opening pages at once on two cores took over a
        minute), not abandoned."""
        since = self._handed_out.get(kernel_id)
        if since is None or kernel_id in self._connected:
            return False
        return (utcnow() - since).total_seconds() < self.first_connect_timeout

    def visitor_kernel_ids(self) -> set[str]:
        """Every kernel but the pool's ready ones (a refill still running its notebook counts
        as a visitor's until it is ready: the cap errs on the safe side)."""
        return set(self.list_kernel_ids()) - self.pooled_kernel_ids()

    @cached_property
    def line(self) -> WaitingLine:
        """The visitors waiting for a place (:class:`WaitingLine`), in the order they came."""
        return WaitingLine(self.line_forget_seconds)

    def places_taken(self) -> int:
        """Visitors' kernels that are alive or starting: what the cap counts (a dead one holds
        no memory and is on its way out). A kernel being started is in no list until it is up,
        a second or more: without counting those, visitors arriving together all passed the
        cap."""
        alive = sum(not self.kernel_is_gone(k) for k in self.visitor_kernel_ids())
        return alive + self._starting

    def places_free(self) -> int:
        return max(0, self.max_kernels - self.places_taken())

    async def start_kernel(self, *args: Any, **kwargs: Any) -> str:
        self._note_handed_out()  # a visit or a refill: look at the pool
        preheat = (kwargs.get("env") or {}).get("VOILA_PREHEAT") == "True"
        visitor = 0 if preheat else 1  # what this start adds to the places taken
        if visitor and self.places_taken() >= self.max_kernels:
            self.log.warning("busy: %d visitors' kernels, refusing another", self.max_kernels)
            raise HTTPError(503, BUSY_MESSAGE, self.max_kernels, reason=BUSY_REASON)
        self._starting += visitor
        try:
            kernel_id = await super().start_kernel(*args, **kwargs)
        finally:
            self._starting -= visitor
        # a preheated kernel may be handed out while it still runs its notebook, before the
        # pool ever showed it ready: its page's wait counts from its start, or from when it
        # left the pool (_note_handed_out), whichever is later
        self._handed_out[kernel_id] = utcnow()
        restarter = getattr(self._kernels.get(kernel_id), "_restarter", None)
        if restarter is not None:  # a dead kernel is not restarted empty (module docstring)
            restarter.restart_limit = 0
        return kernel_id

    # ------------------------------------------------------------------ kernels that die
    def kernel_is_gone(self, kernel_id: str) -> bool:
        """Whether a kernel was removed or its process has ended (checked now, without waiting
        for the restarter's next look, every ``time_to_dead`` seconds)."""
        kernel = self._kernels.get(kernel_id)
        if kernel is None:
            return True
        process = getattr(getattr(kernel, "provisioner", None), "process", None)
        return process is not None and process.poll() is not None

    def drop_dead_pooled(self, notebook_name: str | None = None) -> list[str]:
        """Take the preheated kernels that died out of their pools (every pool, or
        ``notebook_name``'s), shut down what is left of them, and refill the pools at once.
        Returns the ids dropped."""
        dropped = []
        for name, pool in list(getattr(self, "_pools", {}).items()):
            if notebook_name is not None and name != notebook_name:
                continue
            for task in list(pool):
                if not task.done() or task.cancelled() or task.exception() is not None:
                    continue
                content = task.result()
                kernel_id = content.get("kernel_id")
                if not self.kernel_is_gone(kernel_id):
                    continue
                pool.remove(task)
                dropped.append(kernel_id)
                self.log.warning("preheated kernel %s of %s died; replacing it", kernel_id, name)
                render = content.get("task")
                if render is not None and not render.done():
                    render.cancel()
                if kernel_id in self._kernels:
                    forget = asyncio.ensure_future(self._forget(kernel_id))
                    _BACKGROUND.add(forget)  # held until done (the loop keeps weak references)
                    forget.add_done_callback(_BACKGROUND.discard)
                self.fill_if_needed(delay=0, notebook_name=name)
        return dropped

    async def _forget(self, kernel_id: str) -> None:
        try:
            await self.shutdown_kernel(kernel_id, now=True)
        except Exception as e:  # already removed by the restarter's "dead" callback
            self.log.debug("dead kernel %s: %s", kernel_id, e)

    def _handle_kernel_died(self, kernel_id: str) -> None:
        super()._handle_kernel_died(kernel_id)  # removed from the map: its place is free
        self.drop_dead_pooled()  # one of the pool's: replaced

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Voila makes its preheating manager a subclass of this one; its pool is checked for
        dead kernels each time it is looked at, before a kernel is handed out. At the cap the
        pool is said to be empty: Voila then starts a kernel for the visitor, which
        :meth:`start_kernel` refuses (the busy page). Without this, a visitor took a pooled
        kernel whatever the cap, and its refill (a preheated kernel, not refused) took the
        place: a 30-student run held 36 kernels under a cap of 12 with a pool of 7."""
        super().__init_subclass__(**kwargs)
        pool_size = cls.__dict__.get("get_pool_size")
        if pool_size is None:
            return

        def get_pool_size(self, notebook_name: str) -> int:
            self.drop_dead_pooled(notebook_name)
            if self.places_taken() >= self.max_kernels:
                return 0  # a kernel of the pool goes to a visitor only below the cap
            return pool_size(self, notebook_name)

        cls.get_pool_size = get_pool_size

    async def cull_kernels(self) -> None:
        self._spared = self._note_handed_out()
        # forget kernels shut down since the last look
        self._handed_out = {k: t for k, t in self._handed_out.items() if k in self._kernels}
        self._connected = self._connected & set(self._kernels)
        await super().cull_kernels()

    async def cull_kernel_if_idle(self, kernel_id: str) -> None:
        if kernel_id not in self._kernels:  # shut down since the culler listed it (a beacon)
            return
        ready = getattr(self._kernels[kernel_id], "ready", None)
        if ready is not None and not ready.done():  # still starting, so not idle (and without
            return  # a last_activity yet: jupyter_server logged a TraitError for it)
        # waiting in the pool for its visitor, or its page still loading: not abandoned
        if kernel_id in getattr(self, "_spared", set()) | self.pooled_kernel_ids():
            return
        if self._waiting_for_its_page(kernel_id):
            return
        await super().cull_kernel_if_idle(kernel_id)


# ---------------------------------------------------------------------- the pages
class PageHandler(TornadoVoilaHandler):
    """Voila's page handler, setting the ``_xsrf`` cookie with the page so that the page's
    unload beacon (``_xsrf`` form field read from that cookie) shuts its kernel down, and
    keeping the waiting line (:class:`WaitingLine`): at the cap, or while others wait before
    this visitor, the visitor gets the busy page with their place in line (HTTP 503)."""

    _admitted: str | None = None

    async def prepare(self, *args: Any, **kwargs: Any) -> None:
        result = super().prepare(*args, **kwargs)
        if asyncio.iscoroutine(result):
            await result
        self.xsrf_token  # noqa: B018 - tornado sets the cookie when the token is first read
        manager = self.settings.get("kernel_manager")
        if not isinstance(manager, ClassroomKernelManager):
            return
        visitor = self.get_cookie(VISITOR_COOKIE) or ""
        if not _VISITOR_ID.fullmatch(visitor):
            visitor = uuid.uuid4().hex
            self.set_cookie(VISITOR_COOKIE, visitor, httponly=True, samesite="Lax")
        place = manager.line.ask(visitor, manager.places_free(), time.monotonic())
        if place:
            manager.log.info("busy: a visitor is number %d of %d in line", place, len(manager.line))
            raise HTTPError(
                503,
                IN_LINE_MESSAGE,
                manager.max_kernels,
                place,
                manager.line_forget_seconds,
                reason=BUSY_REASON,
            )
        self._admitted = visitor

    def on_finish(self) -> None:
        if self._admitted and self.get_status() == 503:
            # let in, then refused by the cap (another start came first): first in line
            self.settings["kernel_manager"].line.put_first(self._admitted, time.monotonic())
        super().on_finish()


class ClassroomVoila(Voila):
    """Voila, with its pages served by :class:`PageHandler`; configured like Voila
    (``--Voila.port``...)."""

    def init_handlers(self) -> list:
        return [
            (rule[0], PageHandler, *rule[2:]) if rule[1] is TornadoVoilaHandler else rule
            for rule in super().init_handlers()
        ]


__all__ = [
    "BUSY_MESSAGE",
    "BUSY_REASON",
    "IN_LINE_MESSAGE",
    "VISITOR_COOKIE",
    "ClassroomKernelManager",
    "ClassroomVoila",
    "PageHandler",
    "WaitingLine",
]

if __name__ == "__main__":  # hvaelab dashboard: python -m hvaelab.app.serving <Voila's argv>
    from hvaelab.app import serving  # one copy of the classes: the kernel manager's module

    serving.ClassroomVoila.launch_instance()
