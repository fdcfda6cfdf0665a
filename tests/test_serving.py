"""The kernel manager of hvaelab dashboard (hvaelab/app/serving.py), without a browser: the cap,
the pool spared by the culler, and a kernel handed from the pool to a visitor."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from types import SimpleNamespace

import pytest
from jupyter_server._tz import utcnow
from tornado.web import HTTPError

from hvaelab.app.serving import ClassroomKernelManager, WaitingLine


def _run(coro):
    """Run a coroutine on a loop of its own (a test before may have left one running here)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def _done(kernel_id: str) -> asyncio.Future:
    fut = asyncio.get_event_loop_policy().new_event_loop().create_future()
    fut.set_result({"kernel_id": kernel_id})
    return fut


def _manager(pooled: list[str], visitors: list[str], idle_s: float = 600) -> ClassroomKernelManager:
    km = ClassroomKernelManager(max_kernels=2, cull_idle_timeout=60)
    km._pools = {"page.ipynb": [_done(k) for k in pooled]}
    old = utcnow() - timedelta(seconds=idle_s)
    for k in pooled + visitors:
        km._kernels[k] = SimpleNamespace(
            last_activity=old, execution_state="idle", kernel_name="python3",
            kernel_spec=SimpleNamespace(metadata={}),
        )  # fmt: skip
    return km


def test_pooled_kernels_are_not_visitors_and_are_never_culled():
    km = _manager(["p1"], ["v1"])
    shut = []

    async def shutdown(kernel_id, *a, **k):
        shut.append(kernel_id)

    km.shutdown_kernel = shutdown
    assert km.pooled_kernel_ids() == {"p1"} and km.visitor_kernel_ids() == {"v1"}
    _run(km.cull_kernels())
    assert shut == ["v1"]  # idle for 10 minutes, no connection: abandoned; p1 waits for a visitor


def test_a_kernel_handed_from_the_pool_starts_its_idle_time_then():
    km = _manager(["p1", "p2"], [])
    km._note_handed_out()
    km._pools["page.ipynb"].pop(0)  # Voila gives p1 to a visitor whose page is still opening
    shut = []

    async def shutdown(kernel_id, *a, **k):
        shut.append(kernel_id)

    km.shutdown_kernel = shutdown
    _run(km.cull_kernels())
    assert shut == []  # p1 is not culled as if it had idled 10 minutes
    assert (utcnow() - km._kernels["p1"].last_activity).total_seconds() < 5


def test_past_the_cap_a_visitor_kernel_is_refused_with_503_a_refill_is_not(monkeypatch):
    km = _manager(["p1"], ["v1", "v2"])
    with pytest.raises(HTTPError) as err:
        _run(km.start_kernel(env={"VOILA_PREHEAT": "False"}))
    assert err.value.status_code == 503 and err.value.reason == "Busy"
    assert "All 2 places" in err.value.log_message % err.value.args
    started = []

    async def parent_start(self, *a, **k):
        started.append(k["env"]["VOILA_PREHEAT"])
        return "p2"

    from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager

    monkeypatch.setattr(AsyncMappingKernelManager, "start_kernel", parent_start)
    assert _run(km.start_kernel(env={"VOILA_PREHEAT": "True"})) == "p2"
    assert started == ["True"]


def test_hvaelab_dashboard_makes_voila_wait_for_every_output_of_a_cell(tmp_path):
    """Under load (a class opening pages at once) Voila's server falls behind the kernels' output
    messages; with nbclient's default iopub_timeout (4 s) it drops a cell's late outputs and the
    page never becomes interactive. The Voila command line of ``hvaelab dashboard``
    (``voila_argv``), parsed by Voila, must give the executor that renders pages (preheated or not)
    a wait far above that."""
    import nbformat
    from voila.app import Voila
    from voila.execute import VoilaExecutor

    from hvaelab.app.dashboard import DashboardConfig, voila_argv

    app = Voila()
    app.parse_command_line(voila_argv(DashboardConfig(), tmp_path))
    executor = VoilaExecutor(nbformat.v4.new_notebook(), config=app.config)
    assert executor.iopub_timeout >= 60
    assert VoilaExecutor(nbformat.v4.new_notebook()).iopub_timeout < 10  # nbclient's default


# ---------------------------------------------------------------- kernels that die (issue 37)
class _Preheating(ClassroomKernelManager):
    """Voila's preheating subclass in miniature: a pool size and a refill that is recorded."""

    def get_pool_size(self, notebook_name: str) -> int:
        return len(self._pools.get(notebook_name, []))

    def fill_if_needed(self, delay=None, notebook_name=None, **kwargs) -> None:
        self.refills.append((delay, notebook_name))


def _dying(pooled: list[str], visitors: list[str], dead: set[str]) -> _Preheating:
    km = _Preheating(max_kernels=2, cull_idle_timeout=60)
    km.refills, km.shut = [], []
    km._pools = {"page.ipynb": [_done(k) for k in pooled]}
    for k in pooled + visitors:
        code = -9 if k in dead else None
        process = SimpleNamespace(poll=lambda code=code: code)
        km._kernels[k] = SimpleNamespace(provisioner=SimpleNamespace(process=process))

    async def shutdown(kernel_id, *a, **k):
        km.shut.append(kernel_id)
        km._kernels.pop(kernel_id)

    km.shutdown_kernel = shutdown
    return km


def test_a_preheated_kernel_that_died_is_never_handed_out_and_is_replaced():
    km = _dying(["p1", "p2"], ["v1"], dead={"p1", "v1"})

    async def visit():
        size = km.get_pool_size("page.ipynb")  # what Voila asks before it hands a kernel out
        await asyncio.sleep(0)  # the dead kernel's shutdown runs
        return size

    assert _run(visit()) == 1
    assert km.pooled_kernel_ids() == {"p2"}  # the live one is handed out, never p1
    assert km.shut == ["p1"] and km.refills == [(0, "page.ipynb")]
    assert km.visitor_kernel_ids() == {"v1"}  # a visitor's kernel is the restarter's business


def test_a_dead_kernel_is_removed_its_place_freed_and_not_restarted(monkeypatch):
    km = _dying(["p1"], ["v1", "v2"], dead={"v1"})
    km._handle_kernel_died("v1")  # the restarter gave up at once (restart_limit 0)
    assert km.visitor_kernel_ids() == {"v2"} and km.refills == []  # one place free again
    km._kernels["p1"].provisioner.process.poll = lambda: -9
    km._kernels.pop("p1")
    km._handle_kernel_died("p1")  # a pooled one: dropped and replaced
    assert km.pooled_kernel_ids() == set() and km.refills == [(0, "page.ipynb")]

    from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager

    restarter = SimpleNamespace(restart_limit=5)

    async def parent_start(self, *a, **k):
        self._kernels["v3"] = SimpleNamespace(_restarter=restarter)
        return "v3"

    monkeypatch.setattr(AsyncMappingKernelManager, "start_kernel", parent_start)
    km._kernels.pop("v2")
    assert _run(km.start_kernel(env={"VOILA_PREHEAT": "False"})) == "v3"
    assert restarter.restart_limit == 0  # a kernel that dies is not brought back empty


def test_a_visitors_kernel_is_not_culled_before_its_page_has_connected():
    """30 students opening pages on two cores: a page took over a minute to connect, and the
    culler (60 s) shut its kernel down before it did (the page then found no kernel: 404)."""
    km = _manager(["p1", "p2"], [])
    km.first_connect_timeout = 180
    km._note_handed_out()
    km._pools["page.ipynb"].pop(0)  # p1 given to a page still loading ...
    km._pools["page.ipynb"].pop(0)  # ... and p2 to one that connected and left
    km._note_handed_out()
    km.notify_connect("p2")
    shut = []

    async def shutdown(kernel_id, *a, **k):
        shut.append(kernel_id)
        km._kernels.pop(kernel_id)

    km.shutdown_kernel = shutdown
    # both idle past the cull timeout, no connection now
    for k in ("p1", "p2"):
        km._kernels[k].last_activity = utcnow() - timedelta(seconds=120)
    _run(km.cull_kernels())
    assert shut == ["p2"]  # p1's page has not connected yet: it is loading, not abandoned
    km._handed_out["p1"] = utcnow() - timedelta(seconds=200)  # ... past first_connect_timeout
    _run(km.cull_kernels())
    assert shut == ["p2", "p1"]
    _run(km.cull_kernels())
    assert km._handed_out == {} and km._connected == set()  # forgotten at the next look


def test_a_kernel_shut_down_while_the_culler_runs_is_skipped():
    """The page's unload beacon can shut a kernel down between the culler's listing and its
    look at that kernel; that is no error."""
    km = _manager([], ["v1"])
    km._kernels.pop("v1")
    _run(km.cull_kernel_if_idle("v1"))  # no KeyError


def test_a_preheated_kernel_handed_out_while_it_renders_waits_for_its_page(monkeypatch):
    """Voila can give a visitor a pool kernel still running its notebook, so the pool never
    showed it ready: its page's wait counts from the kernel's start (seen in a 30-student run:
    culled 65 s after its start, before its page connected)."""
    from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager

    km = _manager([], [])
    km.first_connect_timeout = 180

    async def parent_start(self, *a, **k):
        self._kernels["p9"] = SimpleNamespace(
            last_activity=utcnow() - timedelta(seconds=120), execution_state="idle",
            kernel_name="python3", kernel_spec=SimpleNamespace(metadata={}),
        )  # fmt: skip
        return "p9"

    monkeypatch.setattr(AsyncMappingKernelManager, "start_kernel", parent_start)
    assert _run(km.start_kernel(env={"VOILA_PREHEAT": "True"})) == "p9"  # a refill ...
    shut = []

    async def shutdown(kernel_id, *a, **k):
        shut.append(kernel_id)

    km.shutdown_kernel = shutdown
    _run(km.cull_kernels())  # ... handed out before any look at the pool, idle 120 s
    assert shut == []
    km._handed_out["p9"] = utcnow() - timedelta(seconds=200)
    _run(km.cull_kernels())
    assert shut == ["p9"]


def test_at_the_cap_the_pool_is_not_handed_out_below_it_it_is():
    """A visitor who takes a pooled kernel adds a kernel (its refill is preheated, never
    refused): at the cap Voila must be told the pool is empty, so that it starts a kernel for
    the visitor, which the cap refuses (the busy page). A 30-student run held 36 kernels
    under a cap of 12 before."""
    km = _dying(["p1"], ["v1", "v2"], dead=set())  # cap 2, two visitors: at the cap
    assert km.get_pool_size("page.ipynb") == 0
    with pytest.raises(HTTPError) as err:  # what Voila does next: a kernel for the visitor
        _run(km.start_kernel(env={"VOILA_PREHEAT": "False"}))
    assert err.value.status_code == 503
    km._kernels.pop("v2")  # a visitor leaves: below the cap, the pool is handed out again
    assert km.get_pool_size("page.ipynb") == 1


def test_a_kernel_still_starting_is_not_looked_at_by_the_culler():
    """A kernel whose start has not finished has no last_activity yet: jupyter_server's culler
    logged a TraitError traceback for it (seen in the 30-student hour). It is not idle."""

    async def look():
        km = _manager([], ["v1"])
        from traitlets import TraitError

        class Starting:  # a ServerKernelManager before its start set last_activity
            ready = asyncio.get_running_loop().create_future()
            execution_state, kernel_name = "starting", "python3"
            kernel_spec = SimpleNamespace(metadata={})

            @property
            def last_activity(self):
                raise TraitError("expected a datetime, not the NoneType None")

        km._kernels["v1"] = Starting()
        shut = []

        async def shutdown(kernel_id, *a, **k):
            shut.append(kernel_id)

        km.shutdown_kernel = shutdown
        await km.cull_kernel_if_idle("v1")  # no error
        return shut

    assert _run(look()) == []


# ---------------------------------------------------------------------- the waiting line
def test_the_waiting_line_lets_in_first_come_first_served():
    line = WaitingLine(forget_s=120)
    assert line.ask("a", free=1, now=0) == 0  # nobody waits, a place is free: in
    assert line.ask("b", free=0, now=1) == 1  # at the cap: first in line
    assert line.ask("c", free=0, now=2) == 2
    # a place frees up: it is b's, not c's, though c asks first
    assert line.ask("c", free=1, now=10) == 2
    assert line.ask("d", free=1, now=11) == 3  # a newcomer queues behind them
    assert line.ask("b", free=1, now=12) == 0  # b comes back: in, and out of the line
    assert line.ask("c", free=0, now=13) == 1  # c moved up, and keeps its place
    assert line.ask("c", free=2, now=14) == 0
    assert line.ask("d", free=1, now=15) == 0
    assert len(line) == 0


def test_two_free_places_let_in_the_first_two_in_line():
    line = WaitingLine()
    for i, v in enumerate("abc"):
        assert line.ask(v, free=0, now=i) == i + 1
    assert line.ask("b", free=2, now=5) == 0  # second in line, two places: in
    assert line.ask("c", free=1, now=6) == 2  # one place left, a is before c
    assert line.ask("a", free=1, now=7) == 0


def test_who_stops_asking_leaves_the_line_and_a_refused_entrant_goes_first():
    line = WaitingLine(forget_s=60)
    assert line.ask("a", free=0, now=0) == 1
    assert line.ask("b", free=0, now=30) == 2
    assert line.ask("b", free=0, now=61) == 1  # a gave up (61 s without a try)
    assert line.ask("c", free=0, now=62) == 2
    line.put_first("c", now=63)  # c was let in, then a start came first: c is next
    assert line.ask("b", free=1, now=64) == 2
    assert line.ask("c", free=1, now=65) == 0


def test_a_kernel_being_started_takes_its_place_at_once():
    """A visitor's kernel is in no list while it starts (a second or more): two visitors
    arriving together at one free place both passed the cap."""
    km = _manager([], ["v1"])  # cap 2, one place free

    async def both():
        release = asyncio.Event()

        async def parent_start(self, *a, **k):
            await release.wait()
            return "v2"

        from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager

        original = AsyncMappingKernelManager.start_kernel
        AsyncMappingKernelManager.start_kernel = parent_start
        try:
            first = asyncio.ensure_future(km.start_kernel(env={"VOILA_PREHEAT": "False"}))
            await asyncio.sleep(0)  # the first start is under way
            assert km.places_taken() == 2 and km.places_free() == 0
            with pytest.raises(HTTPError) as err:
                await km.start_kernel(env={"VOILA_PREHEAT": "False"})
            assert err.value.status_code == 503
            release.set()
            assert await first == "v2"
        finally:
            AsyncMappingKernelManager.start_kernel = original
        assert km._starting == 0

    _run(both())
