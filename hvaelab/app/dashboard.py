"""``hvaelab dashboard``: serve the dashboards (the notebooks) with Voilà, offline, for a class.

Plain Python (no shell script), so it runs the same on Linux, macOS and Windows:

* the template ``hvaelab`` (:func:`hvaelab.package_files.jupyter_data_dir`, put first on
  ``JUPYTER_PATH``): Voilà's "lab" template without its CDN links, so nothing a page loads leaves
  the server;
* the jinja tree page (``classic_tree``: the JupyterLab-based one logs widget-plugin errors
  without a kernel);
* on exactly ``ip:port``: a port in use is an error before Voilà starts, never a silent move to
  another port (``port_retries=0``);
* serving a class (:mod:`hvaelab.app.serving`): preheated kernels, culling of closed pages'
  kernels, a cap on visitors' kernels, and a long wait for each cell's outputs.

:class:`DashboardConfig` holds every setting and its default; :func:`add_arguments` makes the
command line's flags from it, :func:`voila_argv` the Voilà command line (pure), :func:`serve`
checks what it can (checkpoint, notebooks, port) and runs Voilà in this process.
"""

from __future__ import annotations

import dataclasses
import errno
import ipaddress
import os
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .. import package_files
from .resources import ENV_CHECKPOINT  # how the kernels learn the page's checkpoint

KERNEL_MANAGER = "hvaelab.app.serving.ClassroomKernelManager"
SERVER_MODULE = "hvaelab.app.serving"  # Voila with its pages' unload beacon working (serving.py)
LOOPBACK_NAMES = ("localhost",)
ALL_INTERFACES = ("0.0.0.0", "::", "")


class DashboardError(ValueError):
    """A setting or the machine does not allow serving; reported in one line, no traceback."""


def _opt(default, help: str, metavar: str | None = None):  # noqa: A002 - argparse's name
    return field(default=default, metadata={"help": help, "metavar": metavar})


@dataclass
class DashboardConfig:
    """How ``hvaelab dashboard`` serves the pages (defaults: one machine of 24 GB, ~370 MB per
    kernel; see docs/guide/serving.md)."""

    # where
    port: int = _opt(
        8866,  # Voila's usual port; `make dashboard PORT=9000` for another
        "TCP port; one in use is an error, never a move to another port",
        "PORT",
    )
    ip: str = _opt(
        "127.0.0.1",  # this machine only; 0.0.0.0 opens the pages to the network (no login!)
        "address to listen on (0.0.0.0: every interface, for a class; the pages have no login)",
        "ADDR",
    )
    # what
    checkpoint: str | None = _opt(
        None,  # None: the pages' own default (hvaelab.app.resources.page_checkpoint)
        "checkpoint name or path every page opens with (default: fashionmnist)",
        "NAME",
    )
    notebooks: str | None = _opt(
        None,  # None: the seven notebooks that come with hvaelab (package_files.notebooks_dir)
        "folder of notebooks to serve (default: hvaelab's own)",
        "DIR",
    )
    # serving a class (hvaelab/app/serving.py)
    pool_size: int = _opt(
        1,  # a page opens on a kernel that has already run its notebook
        "preheated kernels per page (0: every page starts its kernel when opened)",
        "N",
    )
    fill_delay: float = _opt(
        5,  # after the visitor's first interactions rather than during them
        "seconds before a taken preheated kernel is replaced",
        "S",
    )
    cull_seconds: int = _opt(
        120,  # an open page keeps its kernel however long it sits idle
        "idle seconds after which a closed page's kernel is shut down (0: never)",
        "S",
    )
    cull_interval: int = _opt(30, "how often (s) the culler looks", "S")  # jupyter_server's culler
    max_kernels: int = _opt(
        12,  # ~370 MB each: 12 + 7 preheated kernels fit a 24 GB machine
        "visitors' kernels at once; past it a visitor gets a 'busy, try again' page",
        "N",
    )
    # Voila renders a page by running its notebook and, after each cell's reply, waits for the
    # cell's remaining outputs (nbclient's iopub_timeout, 4 s by default), then drops what has not
    # arrived. With ten pages opening at once on two cores the server falls more than 4 s behind,
    # a page loses a widget's output and never becomes interactive; a kernel that is alive always
    # ends its outputs, so the wait is long.
    iopub_timeout: int = _opt(120, "seconds Voila waits for a cell's outputs while rendering", "S")
    debug: bool = _opt(
        False,  # visitors see "there was an error" only, not the code's traceback
        "show tracebacks on the pages and log at debug level",
    )
    open_browser: bool = _opt(False, "open the start page in this machine's browser")

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise :class:`DashboardError` for a setting out of range."""
        if not 1 <= self.port <= 65535:
            raise DashboardError(f"--port {self.port}: a TCP port is 1..65535 (default 8866)")
        if not str(self.ip).strip():
            raise DashboardError("--ip is empty: give an address, e.g. 127.0.0.1 or 0.0.0.0")
        at_least = {
            "pool_size": 0,
            "fill_delay": 0,
            "cull_seconds": 0,
            "cull_interval": 1,
            "max_kernels": 1,
            "iopub_timeout": 1,
        }
        for name, low in at_least.items():
            value = getattr(self, name)
            if value < low:
                flag = "--" + name.replace("_", "-")
                what = "0 or more" if low == 0 else f"at least {low}"
                raise DashboardError(f"{flag} {value}: must be {what}")


FIELDS = {f.name: f for f in dataclasses.fields(DashboardConfig)}


def add_arguments(parser) -> None:
    """One ``--flag`` per :class:`DashboardConfig` field, with its default and help."""
    for f in FIELDS.values():
        flag = "--" + f.name.replace("_", "-")
        help_ = f.metadata["help"]
        if f.type in ("bool", bool):
            parser.add_argument(flag, action="store_true", default=f.default, help=help_)
            continue
        kind = {"int": int, "float": float}.get(str(f.type), str)
        if f.default is not None:
            help_ += f" (default: {f.default})"
        parser.add_argument(
            flag, type=kind, default=f.default, metavar=f.metadata["metavar"], help=help_
        )


def config_from_args(args) -> DashboardConfig:
    """The :class:`DashboardConfig` of parsed arguments (every field named like a flag)."""
    return DashboardConfig(**{name: getattr(args, name) for name in FIELDS})


def notebooks_folder(cfg: DashboardConfig) -> Path:
    """The folder to serve: ``--notebooks`` (it must exist and hold .ipynb files) or hvaelab's."""
    if cfg.notebooks is None:
        return package_files.notebooks_dir()
    folder = Path(cfg.notebooks).expanduser()
    if not folder.is_dir():
        raise DashboardError(f"--notebooks {cfg.notebooks}: no such folder")
    if not any(folder.glob("*.ipynb")):
        raise DashboardError(f"--notebooks {cfg.notebooks}: the folder holds no .ipynb notebooks")
    return folder.resolve()


def kernel_checkpoint(name: str) -> str:
    """What the kernels get as ``$HVAELAB_CHECKPOINT`` for ``--checkpoint NAME``: the name when
    the checkpoint search finds it by name (the model menu lists it so), else its absolute path
    (a kernel runs in the notebooks' folder, where a relative path means something else).

    Raises :class:`hvaelab.checkpoint.CheckpointNotFoundError` (what was looked at, what exists)
    for a wrong name, before Voila starts."""
    from ..checkpoint import checkpoint_search_dirs, resolve_checkpoint

    stem = resolve_checkpoint(name)
    if stem.parent in checkpoint_search_dirs() and Path(name).name == name:
        return stem.name
    return str(stem.absolute())


def voila_argv(cfg: DashboardConfig, notebooks: Path | str) -> list[str]:
    """Voila's command line for ``cfg``, serving the folder ``notebooks``."""
    argv = [
        str(notebooks),
        f"--Voila.ip={cfg.ip}",
        f"--Voila.port={cfg.port}",
        "--Voila.port_retries=0",  # exactly this port
        f"--Voila.open_browser={cfg.open_browser}",
        "--VoilaConfiguration.template=" + package_files.TEMPLATE,
        "--VoilaConfiguration.classic_tree=True",
        f"--VoilaConfiguration.show_tracebacks={cfg.debug}",
        f"--VoilaConfiguration.multi_kernel_manager_class={KERNEL_MANAGER}",
        f"--VoilaConfiguration.preheat_kernel={cfg.pool_size > 0}",
        f"--VoilaConfiguration.default_pool_size={cfg.pool_size}",
        f"--VoilaKernelManager.fill_delay={cfg.fill_delay}",
        f"--ClassroomKernelManager.max_kernels={cfg.max_kernels}",
        f"--ClassroomKernelManager.cull_idle_timeout={cfg.cull_seconds}",
        f"--ClassroomKernelManager.cull_interval={cfg.cull_interval}",
        "--ClassroomKernelManager.cull_connected=False",  # an open page keeps its kernel
        f"--VoilaExecutor.iopub_timeout={cfg.iopub_timeout}",
    ]
    if cfg.debug:
        argv.append("--Voila.log_level=DEBUG")
    return argv


def voila_environ(
    environ: Mapping[str, str], checkpoint: str | None = None, data_dir: Path | None = None
) -> dict[str, str]:
    """The variables to set for Voila and its kernels: ``JUPYTER_PATH`` with hvaelab's Jupyter
    data folder first (what was there kept after it), and ``HVAELAB_CHECKPOINT`` when given."""
    first = str(data_dir or package_files.jupyter_data_dir())
    rest = [p for p in environ.get("JUPYTER_PATH", "").split(os.pathsep) if p and p != first]
    env = {"JUPYTER_PATH": os.pathsep.join([first, *rest])}
    if checkpoint is not None:
        env[ENV_CHECKPOINT] = checkpoint
    return env


def is_loopback(ip: str) -> bool:
    if ip.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(ip.strip("[]")).is_loopback
    except ValueError:  # a host name
        return False


def url(host: str, port: int) -> str:
    if ":" in host and not host.startswith("["):  # IPv6
        host = f"[{host}]"
    return f"http://{host}:{port}/"


def machine_addresses() -> tuple[str, list[str]]:
    """This machine's host name and its non-loopback IPv4 addresses (what students can type)."""
    host = socket.gethostname()
    found: list[str] = []
    try:
        found += [i[4][0] for i in socket.getaddrinfo(host, None, socket.AF_INET)]
    except OSError:
        pass
    try:  # the address of the default route; a UDP "connect" sends nothing
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))  # TEST-NET-1: never reached
            found.append(s.getsockname()[0])
    except OSError:  # no network at all
        pass
    unique = []
    for a in found:
        if a not in unique and not ipaddress.ip_address(a).is_loopback and a != "0.0.0.0":
            unique.append(a)
    return host, unique


NO_LOGIN_WARNING = (
    "WARNING: the pages have no login: anyone who can reach this address can use them and run "
    "the notebooks' code on this machine. Serve on a network you trust, and stop the server "
    "(Ctrl-C) after class."
)


def banner(
    cfg: DashboardConfig, hostname: str | None = None, addresses: Sequence[str] | None = None
) -> str:
    """What ``hvaelab dashboard`` prints before serving: the URL(s) to open and, off loopback,
    the no-login warning. ``hostname`` / ``addresses`` default to :func:`machine_addresses`."""
    if is_loopback(cfg.ip):
        return f"Dashboards: {url(cfg.ip, cfg.port)}  (Ctrl-C to stop)"
    if cfg.ip in ALL_INTERFACES:
        if hostname is None or addresses is None:
            found_host, found = machine_addresses()
            hostname = found_host if hostname is None else hostname
            addresses = found if addresses is None else addresses
        hosts = [h for h in [hostname, *addresses] if h]
        lines = [
            f"Dashboards on every network address of this machine, port {cfg.port} "
            "(Ctrl-C to stop).",
            "Students open one of:",
            *(f"  {url(h, cfg.port)}" for h in hosts),
            f"On this machine: {url('127.0.0.1', cfg.port)}",
        ]
    else:
        lines = [
            f"Dashboards: {url(cfg.ip, cfg.port)}  (Ctrl-C to stop)",
            f"Students open: {url(cfg.ip, cfg.port)}",
        ]
    return "\n".join([*lines, NO_LOGIN_WARNING])


def check_port(ip: str, port: int) -> None:
    """Raise :class:`DashboardError` unless Voila can listen on ``ip:port``: bind it (as tornado
    will, with SO_REUSEADDR off Windows) and release it."""
    host = None if ip in ("", "*") else ip.strip("[]")
    try:
        infos = socket.getaddrinfo(
            host, port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0, socket.AI_PASSIVE
        )
    except socket.gaierror as e:
        raise DashboardError(f"--ip {ip}: not an address of this machine ({e.strerror})") from None
    for family, kind, proto, _, address in infos:
        if family == socket.AF_INET6 and not socket.has_ipv6:
            continue
        with socket.socket(family, kind, proto) as s:
            if os.name != "nt":
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6 and hasattr(socket, "IPV6_V6ONLY"):
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                s.bind(address)
            except OSError as e:
                code = e.errno
                if code in (errno.EADDRINUSE, getattr(errno, "WSAEADDRINUSE", errno.EADDRINUSE)):
                    raise DashboardError(
                        f"port {port} on {ip} is in use (another dashboard?): choose another "
                        f"with --port, e.g. --port {port + 1 if port < 65535 else 8866}"
                    ) from None
                if code in (errno.EACCES, getattr(errno, "WSAEACCES", errno.EACCES)):
                    raise DashboardError(
                        f"no permission to listen on port {port}: choose one above 1023 with "
                        "--port, e.g. --port 8866"
                    ) from None
                if code == errno.EADDRNOTAVAIL:
                    if ip.lower() == "localhost":
                        continue  # ::1 on a machine without IPv6 (tornado skips it too)
                    raise DashboardError(
                        f"--ip {ip}: not an address of this machine (127.0.0.1: this machine "
                        "only; 0.0.0.0: every network address)"
                    ) from None
                raise DashboardError(f"cannot listen on {ip} port {port}: {e.strerror}") from None


def prepare(cfg: DashboardConfig) -> tuple[list[str], dict[str, str]]:
    """Every check that can fail before Voila starts, in order: the notebooks, the checkpoint
    (its clear not-found message), the port. Returns Voila's argv and the variables to set."""
    notebooks = notebooks_folder(cfg)
    checkpoint = None if cfg.checkpoint is None else kernel_checkpoint(cfg.checkpoint)
    check_port(cfg.ip, cfg.port)
    return voila_argv(cfg, notebooks), voila_environ(os.environ, checkpoint)


def serve(cfg: DashboardConfig) -> int:
    """Check, print where to open the pages, and serve until Ctrl-C (or SIGTERM).

    Voilà runs as ``python -m hvaelab.app.serving`` (Voilà with its pages' unload beacon working)
    in this process's place (POSIX ``exec``): the server does
    not keep what the checks loaded (``hvaelab`` imports torch, about 275 MB), as a server whose
    kernels each hold a model must not. On Windows, where ``exec`` detaches from the console,
    Voilà is a child process and this one waits for it."""
    argv, env = prepare(cfg)
    print(banner(cfg), flush=True)
    command = [sys.executable, "-m", SERVER_MODULE, *argv]
    environ = {**os.environ, **env}  # JUPYTER_PATH for the template; inherited by every kernel
    if os.name == "posix":
        os.execve(sys.executable, command, environ)
    child = subprocess.Popen(command, env=environ)
    while True:
        try:
            return child.wait()
        except KeyboardInterrupt:  # the console's Ctrl-C reaches Voilà too: let it shut down
            continue
