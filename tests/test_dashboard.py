"""``hvaelab dashboard`` (hvaelab/app/dashboard.py) without a server: Voila's command line, the
environment, the checks before Voila starts and what is printed."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from voila.app import Voila
from voila.execute import VoilaExecutor

from hvaelab import package_files
from hvaelab.app import dashboard
from hvaelab.app.dashboard import DashboardConfig, DashboardError, banner, voila_argv
from hvaelab.app.serving import ClassroomKernelManager
from hvaelab.checkpoint import CheckpointNotFoundError
from hvaelab.cli import build_parser
from hvaelab.cli import main as cli_main


def parsed(cfg: DashboardConfig, folder: Path) -> Voila:
    """A Voila application that has parsed the command line of ``cfg`` (not started)."""
    app = Voila()
    app.parse_command_line(voila_argv(cfg, folder))
    return app


def served_with(app: Voila):
    """(VoilaConfiguration, kernel manager) as Voila builds them from its parsed config. The
    folder served must hold no notebook: a preheating manager fills its pools when created."""
    from voila.configuration import VoilaConfiguration
    from voila.voila_kernel_manager import voila_kernel_manager_factory

    app.root_dir = app.extra_args[0]  # as Voila.initialize does for a folder
    assert not list(Path(app.root_dir).rglob("*.ipynb"))
    vc = VoilaConfiguration(parent=app)
    cls = voila_kernel_manager_factory(
        vc.multi_kernel_manager_class, vc.preheat_kernel, vc.default_pool_size
    )
    return vc, cls(parent=app)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_voila_argv_serves_offline_on_loopback_with_the_class_settings(tmp_path):
    cfg = DashboardConfig(
        port=9001,
        pool_size=2,
        fill_delay=3,
        cull_seconds=60,
        cull_interval=7,
        max_kernels=30,
        iopub_timeout=99,
    )
    argv = voila_argv(cfg, tmp_path)
    assert argv[0] == str(tmp_path)  # the folder served
    app = parsed(cfg, tmp_path)
    assert app.extra_args == [str(tmp_path)]
    assert (app.ip, app.port, app.port_retries, app.open_browser) == ("127.0.0.1", 9001, 0, False)
    vc, km = served_with(app)
    assert vc.template == "hvaelab" == package_files.TEMPLATE
    assert vc.classic_tree is True
    assert vc.show_tracebacks is False  # only with --debug
    assert vc.multi_kernel_manager_class is ClassroomKernelManager
    assert isinstance(km, ClassroomKernelManager)
    assert vc.preheat_kernel is True and vc.default_pool_size == 2
    assert km.fill_delay == 3
    assert km.max_kernels == 30
    assert (km.cull_idle_timeout, km.cull_interval, km.cull_connected) == (60, 7, False)
    executor = VoilaExecutor(nbformat.v4.new_notebook(), config=app.config)
    assert executor.iopub_timeout == 99
    assert app.log_level != logging.DEBUG


def test_defaults_and_debug(tmp_path):
    app = parsed(DashboardConfig(), tmp_path)
    assert (app.ip, app.port) == ("127.0.0.1", 8866)
    vc, km = served_with(app)
    assert vc.preheat_kernel is True and vc.default_pool_size == 1
    settings = (km.fill_delay, km.max_kernels, km.cull_idle_timeout, km.cull_interval)
    assert settings == (5, 12, 120, 30)
    assert VoilaExecutor(nbformat.v4.new_notebook(), config=app.config).iopub_timeout == 120
    debug = parsed(DashboardConfig(debug=True), tmp_path)
    assert served_with(debug)[0].show_tracebacks is True
    assert debug.log_level == logging.DEBUG
    cold, _ = served_with(parsed(DashboardConfig(pool_size=0), tmp_path))
    assert cold.preheat_kernel is False and cold.default_pool_size == 0


def test_the_flags_are_the_dataclass_fields_with_its_defaults():
    args = build_parser().parse_args(["dashboard"])
    assert dashboard.config_from_args(args) == DashboardConfig()
    args = build_parser().parse_args(
        "dashboard --ip 0.0.0.0 --max-kernels 30 --pool-size 2 --fill-delay 1.5 --debug".split()
    )
    cfg = dashboard.config_from_args(args)
    assert (cfg.ip, cfg.max_kernels, cfg.pool_size, cfg.fill_delay) == ("0.0.0.0", 30, 2, 1.5)
    assert cfg.debug and not cfg.open_browser


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("port", 0, "--port 0: a TCP port is 1..65535"),
        ("port", 70000, "--port 70000"),
        ("pool_size", -1, "--pool-size -1: must be 0 or more"),
        ("cull_seconds", -5, "--cull-seconds"),
        ("cull_interval", 0, "--cull-interval 0: must be at least 1"),
        ("max_kernels", 0, "--max-kernels 0: must be at least 1"),
        ("iopub_timeout", 0, "--iopub-timeout"),
    ],
)
def test_settings_out_of_range_are_clear_errors(field, value, message):
    with pytest.raises(DashboardError, match=message.replace("(", r"\(")):
        DashboardConfig(**{field: value})


def test_jupyter_path_gets_hvaelabs_data_first_and_keeps_what_was_there(tmp_path):
    ours = str(package_files.jupyter_data_dir())
    assert (Path(ours) / "voila" / "templates" / "hvaelab").is_dir()
    before = os.pathsep.join(["/somewhere/jupyter", "/else"])
    env = dashboard.voila_environ({"JUPYTER_PATH": before})
    assert env == {"JUPYTER_PATH": os.pathsep.join([ours, "/somewhere/jupyter", "/else"])}
    assert dashboard.voila_environ({}) == {"JUPYTER_PATH": ours}
    with_ckpt = dashboard.voila_environ({}, checkpoint="cifar10")
    assert with_ckpt["HVAELAB_CHECKPOINT"] == "cifar10"


def test_serve_execs_voila_in_its_place_with_the_environment(monkeypatch, tmp_path, capsys):
    """serve() with exec replaced: Voila takes the process's place (the server keeps no torch),
    with the template found through JUPYTER_PATH and the checkpoint for the kernels."""
    from jupyter_core.paths import jupyter_path

    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path))
    monkeypatch.delenv("HVAELAB_CHECKPOINT", raising=False)
    seen = {}

    def execve(path, command, env):
        seen.update(path=path, command=command, env=env)
        monkeypatch.setattr(os, "environ", env)  # what Voila will see
        seen["templates"] = [
            p for p in jupyter_path("voila", "templates", "hvaelab") if Path(p).is_dir()
        ]
        raise SystemExit(0)  # exec does not return

    monkeypatch.setattr(dashboard.os, "execve", execve)
    cfg = DashboardConfig(port=free_port(), checkpoint="fashionmnist")
    with pytest.raises(SystemExit):
        dashboard.serve(cfg)
    assert seen["path"] == sys.executable
    argv = voila_argv(cfg, package_files.notebooks_dir())
    assert seen["command"] == [sys.executable, "-m", "hvaelab.app.serving", *argv]
    env = seen["env"]
    assert env["JUPYTER_PATH"].split(os.pathsep) == [
        str(package_files.jupyter_data_dir()),
        str(tmp_path),
    ]
    assert seen["templates"] == [str(package_files.template_dir())]
    assert env["HVAELAB_CHECKPOINT"] == "fashionmnist"  # what the kernels inherit
    assert f"http://127.0.0.1:{cfg.port}/" in capsys.readouterr().out


def test_a_port_in_use_is_one_line_and_exit_2(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "hvaelab", "dashboard", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
        )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert f"port {port}" in lines[0] and "--port" in lines[0]
    assert lines[0].startswith("hvaelab dashboard: error:")
    assert "Traceback" not in done.stderr and "Voil" not in done.stdout + done.stderr


def test_check_port():
    dashboard.check_port("127.0.0.1", free_port())  # free: no error
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(DashboardError, match=f"port {port} on 127.0.0.1 is in use"):
            dashboard.check_port("127.0.0.1", port)


def test_off_loopback_the_banner_names_the_addresses_and_warns_of_no_login():
    wide = banner(DashboardConfig(ip="0.0.0.0"), hostname="lab-pc", addresses=["192.168.1.20"])
    assert "http://lab-pc:8866/" in wide and "http://192.168.1.20:8866/" in wide
    assert "http://127.0.0.1:8866/" in wide
    assert "no login" in wide and "run the notebooks' code on this machine" in wide
    one = banner(DashboardConfig(ip="192.168.1.20", port=9000), hostname="x", addresses=[])
    assert "http://192.168.1.20:9000/" in one and "no login" in one
    for ip in ("127.0.0.1", "::1", "localhost"):
        local = banner(DashboardConfig(ip=ip))
        assert "no login" not in local and ":8866/" in local
    assert "http://[::1]:8866/" in banner(DashboardConfig(ip="::1"))
    host, addresses = dashboard.machine_addresses()
    assert host and all(not a.startswith("127.") for a in addresses)


def fail_if_voila_starts(monkeypatch):
    def launch(*a, **k):
        raise AssertionError("Voila started")

    monkeypatch.setattr(Voila, "launch_instance", launch)


def test_a_wrong_checkpoint_fails_before_voila_starts(monkeypatch, capsys):
    fail_if_voila_starts(monkeypatch)
    with pytest.raises(CheckpointNotFoundError, match="'no-such-model' not found"):
        dashboard.prepare(DashboardConfig(checkpoint="no-such-model", port=free_port()))
    port = free_port()
    assert cli_main(["dashboard", "--checkpoint", "no-such-model", "--port", str(port)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "checkpoint 'no-such-model' not found" in err[0]
    assert "Available checkpoints" in err[0]


def test_notebooks_must_be_a_folder_of_notebooks(monkeypatch, tmp_path, capsys):
    fail_if_voila_starts(monkeypatch)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no notebook here")
    assert cli_main(["dashboard", "--notebooks", str(empty), "--port", str(free_port())]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err
        == f"hvaelab dashboard: error: --notebooks {empty}: the folder holds no .ipynb notebooks"
    )
    with pytest.raises(DashboardError, match="no such folder"):
        dashboard.notebooks_folder(DashboardConfig(notebooks=str(tmp_path / "missing")))
    (empty / "page.ipynb").write_text("{}")
    assert dashboard.notebooks_folder(DashboardConfig(notebooks=str(empty))) == empty.resolve()
    assert dashboard.notebooks_folder(DashboardConfig()) == package_files.notebooks_dir()


def test_the_kernels_get_a_name_they_can_find_or_an_absolute_path(monkeypatch, tmp_path):
    folder = tmp_path / "ck"
    folder.mkdir()
    (folder / "tiny.json").write_text("{}")
    (folder / "tiny.safetensors").write_bytes(b"")
    monkeypatch.setenv("HVAELAB_CHECKPOINTS", str(folder))
    monkeypatch.chdir(tmp_path)
    assert dashboard.kernel_checkpoint("tiny") == "tiny"  # the menu's name
    assert dashboard.kernel_checkpoint("ck/tiny.json") == str(
        folder / "tiny"
    )  # kernels run elsewhere
