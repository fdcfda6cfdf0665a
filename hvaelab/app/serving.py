"""Serving a class: the kernel manager behind ``make dashboard`` (``scripts/dashboard``).

Voila runs one Python kernel per open page (~370 MB each here). ``scripts/dashboard`` serves with

* **preheated kernels**: Voila keeps ``pool_size`` kernels per page that have already run the
  notebook, so a page opens without waiting for it; a taken kernel is replaced ``fill_delay``
  seconds later, after the visitor's first interactions rather than during them;
* **culling**: the kernel of a page that was closed or left (no browser connection) and idle for
  ``cull_idle_timeout`` seconds is shut down (jupyter_server's culler, checked every
  ``cull_interval`` seconds); an open page, however idle, keeps its kernel;
* **a cap**: at most ``max_kernels`` visitors' kernels at once; past it a visitor gets a
  "busy, try again in a minute" page (HTTP 503) instead of the server running out of memory.

:class:`ClassroomKernelManager` adds the last two points' exceptions to jupyter_server's kernel
manager: the culler never shuts down a preheated kernel still waiting in the pool, and the cap
counts visitors' kernels only. So the server holds at most ``max_kernels`` + (pool size x pages)
kernels whatever the number of visits.
"""

from __future__ import annotations

from typing import Any

from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager
from tornado.web import HTTPError
from traitlets import Integer

BUSY_REASON = "Busy"
BUSY_MESSAGE = (
    "All %d places of this server are taken. Please try again in a minute or two: places free "
    "up when other visitors close their pages."
)


class ClassroomKernelManager(AsyncMappingKernelManager):
    """Voila's kernel manager with a cap on visitors' kernels and a culler that spares the
    preheated pool (see the module docstring)."""

    max_kernels = Integer(
        12,
        config=True,
        help="Most kernels of visitors' pages at once (preheated kernels not counted); past it a "
        "visitor gets a 'busy, try again' page.",
    )

    def pooled_kernel_ids(self) -> set[str]:
        """Kernels started for Voila's preheated pool and not yet given to a visitor."""
        ids = set()
        for pool in getattr(self, "_pools", {}).values():  # set by Voila's preheat subclass
            for task in pool:
                if task.done() and not task.cancelled() and task.exception() is None:
                    ids.add(task.result().get("kernel_id"))
        return ids

    def visitor_kernel_ids(self) -> set[str]:
        return set(self.list_kernel_ids()) - self.pooled_kernel_ids()

    async def start_kernel(self, *args: Any, **kwargs: Any) -> str:
        preheat = (kwargs.get("env") or {}).get("VOILA_PREHEAT") == "True"
        if not preheat and len(self.visitor_kernel_ids()) >= self.max_kernels:
            self.log.warning("busy: %d visitors' kernels, refusing another", self.max_kernels)
            raise HTTPError(503, BUSY_MESSAGE, self.max_kernels, reason=BUSY_REASON)
        return await super().start_kernel(*args, **kwargs)

    async def cull_kernel_if_idle(self, kernel_id: str) -> None:
        if kernel_id in self.pooled_kernel_ids():  # waiting for its visitor: not abandoned
            return
        await super().cull_kernel_if_idle(kernel_id)


__all__ = ["BUSY_MESSAGE", "BUSY_REASON", "ClassroomKernelManager"]
