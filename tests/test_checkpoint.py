"""Checkpoint files: exact round trips, atomic writes, clear errors, name resolution, resume."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import torch

import hvaelab
from hvaelab import checkpoint as ckpt
from hvaelab import package_files
from hvaelab.checkpoint import (
    CheckpointError,
    CheckpointNotFoundError,
    flatten_state,
    list_checkpoints,
    load_checkpoint,
    load_state,
    resolve_checkpoint,
    save_checkpoint,
    save_state,
    unflatten_state,
)


@pytest.fixture(autouse=True)
def _isolated_search_path(tmp_path, monkeypatch):
    """Keep the user's env var, cache, the repository's shipped checkpoints and any installed
    hvaelab-models out of lookups."""
    monkeypatch.delenv("HVAELAB_CHECKPOINTS", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.setattr(ckpt, "_repo_checkpoints_dir", lambda: tmp_path / "repo-checkpoints")
    monkeypatch.setattr(package_files, "MODELS_PACKAGE", "hvaelab_models_not_installed")


def test_repo_checkpoints_dir_is_the_checkouts_checkpoints_folder(monkeypatch):
    monkeypatch.undo()
    checkout = Path(__file__).resolve().parents[1]  # these tests run from the checkout
    assert package_files.checkout_root() == checkout
    assert ckpt._repo_checkpoints_dir() == checkout / "checkpoints"


def test_an_installed_hvaelab_searches_no_checkout(tmp_path, monkeypatch):
    monkeypatch.undo()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.delenv("HVAELAB_CHECKPOINTS", raising=False)
    monkeypatch.setattr(package_files, "MODELS_PACKAGE", "hvaelab_models_not_installed")
    monkeypatch.setattr(package_files, "checkout_root", lambda: None)
    assert ckpt._repo_checkpoints_dir() is None
    cache = tmp_path / "xdg-cache" / "hvaelab" / "checkpoints"
    assert ckpt.checkpoint_search_dirs([tmp_path / "x"]) == [tmp_path / "x", cache]


def _tensors(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(4, 6, generator=g)
    return {
        "w": base,
        "w_t": base.t(),  # non-contiguous view sharing storage with "w"
        "b": torch.randn(6, generator=g, dtype=torch.float64),
        "scalar": torch.tensor(1.5),
        "idx": torch.arange(5, dtype=torch.int64),
        "mask": torch.tensor([True, False]),
        "half": torch.randn(3, generator=g).to(torch.bfloat16),
    }


def _card() -> dict:
    return {"config": {"latents": [8, 16, 32], "likelihood": "bernoulli"}, "metrics": {"nll": 0.25}}


def _no_temp_files(directory: Path) -> bool:
    return not [p for p in directory.iterdir() if p.name.endswith(".tmp")]


# --------------------------------------------------------------------------- round trip


def test_round_trip_is_bitwise_exact_and_card_has_format_fields(tmp_path):
    tensors = _tensors()
    stem = save_checkpoint(tmp_path / "model", tensors, _card())
    assert stem == tmp_path / "model"
    loaded, card = load_checkpoint(tmp_path / "model.json")
    assert set(loaded) == set(tensors)
    for name, t in tensors.items():
        assert loaded[name].dtype == t.dtype and loaded[name].shape == t.shape
        assert torch.equal(
            loaded[name].reshape(-1).view(torch.uint8), t.reshape(-1).view(torch.uint8)
        )
    assert card["config"] == _card()["config"] and card["metrics"] == {"nll": 0.25}
    assert card["format"] == "hvaelab-checkpoint" and card["format_version"] == 1
    assert card["hvaelab_version"] == hvaelab.__version__
    assert card["weights_file"] == "model.safetensors"
    assert card["weights_sha256"] == ckpt._sha256_file(tmp_path / "model.safetensors")
    assert card["created"].endswith("+00:00")
    assert _no_temp_files(tmp_path)


@pytest.mark.parametrize("given", ["m", "m.json", "m.safetensors"])
def test_any_of_stem_or_file_names_address_the_same_checkpoint(tmp_path, given):
    save_checkpoint(tmp_path / given, {"x": torch.ones(2)}, {})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.safetensors"]
    for name in ("m", "m.json", "m.safetensors"):
        assert torch.equal(load_checkpoint(tmp_path / name)[0]["x"], torch.ones(2))


def test_resaving_a_loaded_card_refreshes_format_fields(tmp_path):
    save_checkpoint(tmp_path / "a", {"x": torch.ones(2)}, {"note": "first"})
    _, card = load_checkpoint(tmp_path / "a")
    save_checkpoint(tmp_path / "b", {"x": torch.zeros(3)}, card)
    tensors, card_b = load_checkpoint(tmp_path / "b")
    assert card_b["note"] == "first" and card_b["weights_file"] == "b.safetensors"
    assert torch.equal(tensors["x"], torch.zeros(3))


def test_card_that_is_not_json_is_refused_at_save(tmp_path):
    with pytest.raises(CheckpointError, match="NaN"):
        save_checkpoint(tmp_path / "m", {"x": torch.ones(1)}, {"metric": float("nan")})
    with pytest.raises(CheckpointError, match="JSON"):
        save_checkpoint(tmp_path / "m", {"x": torch.ones(1)}, {"obj": object()})
    assert not (tmp_path / "m.json").exists() and _no_temp_files(tmp_path)


def test_non_tensor_values_are_refused(tmp_path):
    with pytest.raises(TypeError, match="torch.Tensor"):
        save_checkpoint(tmp_path / "m", {"x": [1, 2]}, {})


# --------------------------------------------------------------------------- atomicity


def test_crash_while_writing_weights_keeps_previous_checkpoint(tmp_path, monkeypatch):
    old = save_checkpoint(tmp_path / "m", {"x": torch.ones(3)}, {"v": 1})
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(old, {"x": torch.zeros(3)}, {"v": 2})
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    monkeypatch.undo()
    assert load_checkpoint(old)[1]["v"] == 1


@pytest.mark.parametrize("fail_on", [".safetensors", ".json"])
def test_crash_during_rename_keeps_previous_checkpoint_and_no_temp_files(
    tmp_path, monkeypatch, fail_on
):
    save_checkpoint(tmp_path / "m", {"x": torch.ones(3)}, {"v": 1})
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    real_replace = os.replace

    def replace(src, dst):
        if str(dst).endswith(fail_on) and str(src).endswith(".tmp"):
            with open(src, "rb"):  # the temp file was fully written before the rename
                pass
            raise OSError("power cut")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError, match="power cut"):
        save_checkpoint(tmp_path / "m", {"x": torch.zeros(3)}, {"v": 2})
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    tensors, card = load_checkpoint(tmp_path / "m")
    assert card["v"] == 1 and torch.equal(tensors["x"], torch.ones(3))


def test_crash_on_first_save_leaves_nothing(tmp_path, monkeypatch):
    real_replace = os.replace

    def replace(src, dst):
        if str(dst).endswith(".json"):
            raise OSError("power cut")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError):
        save_checkpoint(tmp_path / "new", {"x": torch.ones(1)}, {})
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- weights dtype


def test_card_records_the_dtype_its_weights_are_stored_in(tmp_path):
    save_checkpoint(tmp_path / "f32", {"w": torch.ones(2), "n": torch.arange(3)}, {})
    save_checkpoint(tmp_path / "f16", {"w": torch.ones(2, dtype=torch.float16)}, {})
    save_checkpoint(tmp_path / "mixed", _tensors(), _card())
    dtypes = [load_checkpoint(tmp_path / n)[1]["weights_dtype"] for n in ("f32", "f16", "mixed")]
    assert dtypes == ["float32", "float16", "mixed"]
    # a card cannot claim another dtype than its weights have
    save_checkpoint(tmp_path / "lie", {"w": torch.ones(2)}, {"weights_dtype": "float16"})
    assert load_checkpoint(tmp_path / "lie")[1]["weights_dtype"] == "float32"


def _with_files(stem: Path, tag: bytes) -> None:
    """Stand-ins for the files that go with a checkpoint's weights (copied as bytes)."""
    for suffix in (*_KEPT, *_RECOMPUTED):
        Path(f"{stem}{suffix}").write_bytes(tag + suffix.encode())


_KEPT = (".history.csv", ".samples.safetensors")  # do not depend on the weights' values
_RECOMPUTED = (".scores.safetensors", ".second-stage.safetensors")  # computed from them


def test_float16_copy_halves_the_weights_and_drops_what_was_computed_from_them(tmp_path):
    g = torch.Generator().manual_seed(0)
    tensors = {"w": torch.randn(64, 64, generator=g), "step": torch.arange(4)}
    src = save_checkpoint(
        tmp_path / "src", tensors, {"note": "kept", "evaluation": {"table2": [{"auroc": 0.9}]}}
    )
    _with_files(src, b"src")
    dst = tmp_path / "dst"
    _with_files(dst, b"old weights")  # a checkpoint for other weights was at DST
    save_checkpoint(dst, {"w": torch.zeros(1)}, {})
    Path(f"{dst}.scores.partial.safetensors").write_bytes(b"old rows")

    with pytest.raises(CheckpointError, match="already exists"):
        ckpt.copy_checkpoint(src, dst, dtype="float16")
    ckpt.copy_checkpoint(src, dst, replace=True, dtype="float16")

    loaded, card = load_checkpoint(dst)
    assert loaded["w"].dtype == torch.float16 and torch.equal(loaded["w"], tensors["w"].half())
    assert torch.equal(loaded["step"], tensors["step"])  # integers are left as they are
    _, src_card = load_checkpoint(src)
    assert card["weights_dtype"] == "float16" and card["note"] == "kept"
    assert card["converted_from"] == {
        "weights_sha256": src_card["weights_sha256"],
        "weights_dtype": "float32",
    }
    assert card["weights_sha256"] != src_card["weights_sha256"] and "evaluation" not in card
    sizes = [Path(f"{stem}.safetensors").stat().st_size for stem in (src, dst)]
    assert sizes[1] < 0.55 * sizes[0]
    for suffix in _KEPT:
        assert Path(f"{dst}{suffix}").read_bytes() == Path(f"{src}{suffix}").read_bytes()
    for suffix in (*_RECOMPUTED, ".scores.partial.safetensors"):
        assert not Path(f"{dst}{suffix}").exists(), suffix
    assert _no_temp_files(tmp_path)

    # copying it again in the dtype it has is a plain byte-for-byte copy
    again = ckpt.copy_checkpoint(dst, tmp_path / "again", dtype="float16")
    assert Path(f"{again}.safetensors").read_bytes() == Path(f"{dst}.safetensors").read_bytes()


def test_a_card_from_before_weights_dtype_was_recorded_reads_as_float32(tmp_path):
    stem = save_checkpoint(tmp_path / "old", {"w": torch.full((3,), 0.1)}, {})
    card_path = Path(f"{stem}.json")
    card = json.loads(card_path.read_text())
    del card["weights_dtype"]
    card_path.write_text(json.dumps(card))
    assert "weights_dtype" not in load_checkpoint(stem)[1]
    new = load_checkpoint(ckpt.copy_checkpoint(stem, tmp_path / "new", dtype="float16"))[1]
    assert new["converted_from"]["weights_dtype"] == "float32"


def test_weights_beyond_float16_or_an_unknown_dtype_are_refused_and_nothing_is_written(tmp_path):
    stem = save_checkpoint(tmp_path / "big", {"w": torch.tensor([1.0, 1e5])}, {})
    with pytest.raises(CheckpointError, match=r"w has values beyond its range.*1e\+05"):
        ckpt.copy_checkpoint(stem, tmp_path / "small", dtype="float16")
    with pytest.raises(CheckpointError, match="choose one of float32, float16"):
        ckpt.copy_checkpoint(stem, tmp_path / "small", dtype="int8")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.json", "big.safetensors"]


# --------------------------------------------------------------------------- bad checkpoints


@pytest.fixture
def saved(tmp_path) -> Path:
    return save_checkpoint(tmp_path / "good", _tensors(), _card())


def _expect_error(path, *fragments: str) -> str:
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_truncated_weights_give_sha_mismatch(saved):
    weights = saved.with_name("good.safetensors")
    weights.write_bytes(weights.read_bytes()[:-10])
    _expect_error(saved, "good.safetensors", "sha256", "truncated")


def test_garbage_json(saved):
    saved.with_name("good.json").write_text("{not json at all")
    _expect_error(saved, "good.json", "not valid JSON")


def test_foreign_json(saved):
    saved.with_name("good.json").write_text(json.dumps({"foo": 1}))
    _expect_error(saved, "good.json", "foreign JSON")


def test_json_that_is_a_list_is_foreign(saved):
    saved.with_name("good.json").write_text("[1, 2]")
    _expect_error(saved, "good.json", "not an hvaelab")


def test_unsupported_format_version(saved):
    card_path = saved.with_name("good.json")
    card = json.loads(card_path.read_text())
    card["format_version"] = 99
    card_path.write_text(json.dumps(card))
    _expect_error(saved, "format_version 99", "upgrade hvaelab")


def test_foreign_safetensors_with_copied_card_gives_sha_mismatch(saved, tmp_path):
    foreign = tmp_path / "foreign"
    safetensors.torch.save_file({"x": torch.ones(2)}, foreign.with_name("foreign.safetensors"))
    foreign.with_name("foreign.json").write_bytes(saved.with_name("good.json").read_bytes())
    _expect_error(foreign, "foreign.safetensors", "sha256", "another card")


def test_foreign_safetensors_with_matching_sha_is_still_refused(tmp_path):
    weights = tmp_path / "foreign.safetensors"
    safetensors.torch.save_file({"x": torch.ones(2)}, weights)
    card = {
        "format": "hvaelab-checkpoint",
        "format_version": 1,
        "weights_sha256": ckpt._sha256_file(weights),
    }
    (tmp_path / "foreign.json").write_text(json.dumps(card))
    _expect_error(tmp_path / "foreign", "not written by hvaelab")


def test_unparseable_safetensors_with_matching_sha(tmp_path):
    weights = tmp_path / "junk.safetensors"
    weights.write_bytes(b"\xff" * 64)
    card = {
        "format": "hvaelab-checkpoint",
        "format_version": 1,
        "weights_sha256": ckpt._sha256_file(weights),
    }
    (tmp_path / "junk.json").write_text(json.dumps(card))
    _expect_error(tmp_path / "junk", "junk.safetensors", "not a readable safetensors")


def test_missing_weights(saved):
    saved.with_name("good.safetensors").unlink()
    _expect_error(saved, "good.safetensors", "missing")


def test_missing_card(saved):
    saved.with_name("good.json").unlink()
    _expect_error(saved, "good.json", "missing")


def test_state_file_loaded_as_checkpoint_says_what_it_is(tmp_path):
    save_state(tmp_path / "run", {"epoch": 1})
    _expect_error(tmp_path / "run.state.json", "training-state file", "load_state")


# --------------------------------------------------------------------------- resolution


def test_existing_path_is_taken_as_is(saved):
    assert resolve_checkpoint(saved.with_name("good.safetensors")) == saved
    assert resolve_checkpoint(str(saved)) == saved


def test_name_resolution_order_search_dirs_beat_env_var(tmp_path, monkeypatch):
    first, second, env_dir = tmp_path / "first", tmp_path / "second", tmp_path / "env"
    for d in (first, second, env_dir):
        save_checkpoint(d / "mymodel", {"x": torch.ones(1)}, {"where": d.name})
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HVAELAB_CHECKPOINTS", str(env_dir))
    assert resolve_checkpoint("mymodel", search_dirs=[first, second]) == first / "mymodel"
    assert resolve_checkpoint("mymodel", search_dirs=[second, first]) == second / "mymodel"
    assert resolve_checkpoint("mymodel") == env_dir / "mymodel"
    assert load_checkpoint("mymodel", search_dirs=[second])[1]["where"] == "second"


def test_env_var_with_several_dirs_and_user_cache(tmp_path, monkeypatch):
    a, b = tmp_path / "a", tmp_path / "b"
    save_checkpoint(b / "onlyb", {"x": torch.ones(1)}, {})
    cache = tmp_path / "xdg-cache" / "hvaelab" / "checkpoints"
    save_checkpoint(cache / "cached", {"x": torch.ones(1)}, {})
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HVAELAB_CHECKPOINTS", os.pathsep.join([str(a), str(b)]))
    assert resolve_checkpoint("onlyb") == b / "onlyb"
    assert resolve_checkpoint("cached") == cache / "cached"
    save_checkpoint(tmp_path / "repo-checkpoints" / "cached", {"x": torch.ones(1)}, {})
    assert resolve_checkpoint("cached") == tmp_path / "repo-checkpoints" / "cached"  # repo first
    assert ckpt.checkpoint_search_dirs() == [a, b, tmp_path / "repo-checkpoints", cache]


def test_not_found_lists_every_place_looked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HVAELAB_CHECKPOINTS", str(tmp_path / "envdir"))
    with pytest.raises(CheckpointNotFoundError) as info:
        load_checkpoint("nosuchmodel", search_dirs=[tmp_path / "explicit"])
    message = str(info.value)
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, ValueError)
    for d in ("explicit", "envdir", "xdg-cache/hvaelab/checkpoints", "."):
        assert str((tmp_path / d / "nosuchmodel.json").absolute()) in message, message
    assert str(tmp_path / "repo-checkpoints" / "nosuchmodel.json") in message
    assert "HVAELAB_CHECKPOINTS" in message
    assert 'pip install "hvaelab[models]"' in message  # the models are not installed
    assert len(info.value.searched) == 5


def test_search_order_puts_the_installed_models_after_the_checkout_before_the_cache(
    tmp_path, monkeypatch, installed_models
):
    explicit, env, repo = tmp_path / "explicit", tmp_path / "env", tmp_path / "repo-checkpoints"
    cache = tmp_path / "xdg-cache" / "hvaelab" / "checkpoints"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HVAELAB_CHECKPOINTS", str(env))
    assert ckpt.checkpoint_search_dirs([explicit]) == [explicit, env, repo, installed_models, cache]
    for d in (cache, installed_models):
        save_checkpoint(d / "shipped", {"x": torch.ones(1)}, {"where": d.name})
    assert resolve_checkpoint("shipped") == installed_models / "shipped"  # found by name
    assert list_checkpoints() == [installed_models / "shipped"]
    for d in (repo, env, explicit):  # each earlier place wins over the installed models
        save_checkpoint(d / "shipped", {"x": torch.ones(1)}, {})
        assert resolve_checkpoint("shipped", search_dirs=[explicit]) == d / "shipped"
    with pytest.raises(CheckpointNotFoundError) as info:
        resolve_checkpoint("nosuchmodel")
    assert str(installed_models / "nosuchmodel.json") in str(info.value)
    assert "pip install" not in str(info.value)  # they are installed
    assert len(info.value.searched) == 5


def test_installed_checkpoints_are_read_only_and_copy_out(tmp_path, monkeypatch, installed_models):
    shipped = save_checkpoint(installed_models / "shipped", _tensors(), _card())
    before = {p.name: p.read_bytes() for p in installed_models.iterdir()}
    assert ckpt.is_installed(shipped) and ckpt.is_installed(f"{shipped}.json")
    assert not ckpt.is_installed(tmp_path / "shipped")
    with pytest.raises(CheckpointError) as info:
        ckpt.ensure_writable(shipped, "tables")
    message = str(info.value)
    assert "installed" in message and "read-only" in message
    assert "`hvaelab copy shipped ./checkpoints/shipped`" in message
    assert "`hvaelab tables --checkpoint ./checkpoints/shipped`" in message
    ckpt.ensure_writable(tmp_path / "elsewhere", "tables")  # not installed: nothing to say

    other = save_checkpoint(tmp_path / "other", _tensors(1), _card())
    for replace in (False, True):
        with pytest.raises(CheckpointError, match="read-only") as info:
            ckpt.copy_checkpoint(other, shipped, replace=replace)
        assert f"`hvaelab copy {other} ./checkpoints/shipped`" in str(info.value)
    assert {p.name: p.read_bytes() for p in installed_models.iterdir()} == before

    monkeypatch.chdir(tmp_path)  # the copy the message suggests
    copy = ckpt.copy_checkpoint("shipped", "./checkpoints/shipped")
    assert not ckpt.is_installed(copy)
    assert copy.with_name("shipped.safetensors").read_bytes() == before["shipped.safetensors"]
    ckpt.update_card(copy, {"metrics": {"nll": 0.5}})  # writable
    assert resolve_checkpoint("shipped") == installed_models / "shipped"
    monkeypatch.setenv("HVAELAB_CHECKPOINTS", str(tmp_path / "checkpoints"))
    assert resolve_checkpoint("shipped") == tmp_path / "checkpoints" / "shipped"


def test_file_with_other_suffix_is_refused(tmp_path):
    other = tmp_path / "model.ckpt"
    other.write_bytes(b"x")
    with pytest.raises(CheckpointError, match="not a checkpoint file"):
        resolve_checkpoint(other)


def test_list_checkpoints_skips_foreign_and_incomplete(tmp_path):
    d1, d2 = tmp_path / "d1", tmp_path / "d2"
    save_checkpoint(d1 / "zeta", {"x": torch.ones(1)}, {})
    save_checkpoint(d1 / "alpha", {"x": torch.ones(1)}, {})
    save_checkpoint(d2 / "alpha", {"x": torch.ones(1)}, {})  # shadowed by d1/alpha
    save_checkpoint(d2 / "beta", {"x": torch.ones(1)}, {})
    (d2 / "beta.safetensors").unlink()  # incomplete
    (d2 / "alpha.scores.json").write_text("{}")  # a score table, not a card
    safetensors.torch.save_file({"x": torch.ones(1)}, d2 / "foreign.safetensors")
    (d2 / "foreign.json").write_text('{"foo": 1}')
    save_state(d2 / "run", {"epoch": 1})
    assert list_checkpoints([d1, d2]) == [d1 / "alpha", d1 / "zeta"]


# --------------------------------------------------------------------------- training state


def test_flatten_round_trips_nested_values_exactly():
    obj = {
        "ints": [0, -3, 2**53 - 1, 2**53, -(2**64) - 7, 2**128 + 1],
        "floats": (0.1, -0.0, float("inf"), float("-inf"), float("nan"), 1e-308),
        "flags": [True, False, None],
        "text": "ab\u00e9",
        7: {"nested": ({"t": torch.arange(3)},)},
        (1, "k"): "tuple key",
        "np": np.arange(6, dtype=np.uint32).reshape(2, 3),
        "np_scalars": [np.float64(0.5), np.int64(-2), np.bool_(True)],
        "empty": {},
    }
    tensors, meta = flatten_state(obj)
    text = json.dumps(meta, allow_nan=False)  # strict JSON
    back = unflatten_state(tensors, json.loads(text))
    assert back["ints"] == obj["ints"] and back["text"] == obj["text"]
    assert back["flags"] == [True, False, None] and back["empty"] == {}
    assert isinstance(back["floats"], tuple) and back["floats"][:4] == obj["floats"][:4]
    assert math.copysign(1.0, back["floats"][1]) == -1.0 and math.isnan(back["floats"][4])
    assert back["floats"][5] == 1e-308
    assert torch.equal(back[7]["nested"][0]["t"], torch.arange(3))
    assert back[(1, "k")] == "tuple key"
    assert back["np"].dtype == np.uint32 and np.array_equal(back["np"], obj["np"])
    assert [type(v) for v in back["np_scalars"]] == [np.float64, np.int64, np.bool_]
    assert back["np_scalars"] == obj["np_scalars"]
    big = [m for m in json.loads(text)["__dict__"] if m[0] == "ints"][0][1]
    assert big[3] == {"__int__": str(2**53)} and big[2] == 2**53 - 1


def test_flatten_rejects_unsupported_values_with_path():
    with pytest.raises(TypeError, match=r"set at state\['opt'\]\[1\]"):
        flatten_state({"opt": [1, {2}]})


def test_unflatten_rejects_malformed_meta():
    with pytest.raises(CheckpointError, match="missing"):
        unflatten_state({}, {"__tensor__": "t0"})
    with pytest.raises(CheckpointError, match="malformed"):
        unflatten_state({}, {"bogus": 1})


def test_adam_state_and_rngs_round_trip(tmp_path):
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2, betas=(0.8, 0.95))
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    torch_rng = torch.get_rng_state()
    np_rng = np.random.default_rng(123)
    np_rng.random(5)
    legacy = np.random.RandomState(7).get_state()
    state = {
        "optimizer": opt.state_dict(),
        "torch_rng": torch_rng,
        "numpy_rng": np_rng.bit_generator.state,
        "legacy_numpy": legacy,
        "epoch": 4,
    }
    stem = save_state(tmp_path / "run", state, {"best": 1.5, "history": [1, 2]})
    assert stem == tmp_path / "run.state"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.state.json", "run.state.safetensors"]
    back, extra = load_state(tmp_path / "run")
    assert extra == {"best": 1.5, "history": [1, 2]}
    assert back["epoch"] == 4
    assert torch.equal(back["torch_rng"], torch_rng) and back["torch_rng"].dtype == torch.uint8
    assert back["numpy_rng"] == np_rng.bit_generator.state
    assert back["legacy_numpy"][0] == "MT19937"
    assert np.array_equal(back["legacy_numpy"][1], legacy[1])
    assert back["legacy_numpy"][2:] == legacy[2:]
    restored = np.random.default_rng()
    restored.bit_generator.state = back["numpy_rng"]
    assert np.array_equal(restored.random(4), np_rng.random(4))
    assert back["optimizer"]["param_groups"] == opt.state_dict()["param_groups"]
    for pid, s in opt.state_dict()["state"].items():
        for k, v in s.items():
            assert torch.equal(back["optimizer"]["state"][pid][k], v), k


def test_load_state_missing_and_corrupt(tmp_path):
    with pytest.raises(CheckpointNotFoundError, match="without --resume"):
        load_state(tmp_path / "nothing")
    save_state(tmp_path / "run", {"x": torch.ones(3)})
    weights = tmp_path / "run.state.safetensors"
    weights.write_bytes(weights.read_bytes()[:-4])
    with pytest.raises(CheckpointError, match="sha256"):
        load_state(tmp_path / "run.state.json")


def _train_steps(model, opt, n: int, gen: np.random.Generator) -> None:
    for _ in range(n):
        x = torch.randn(8, 3)  # global torch RNG
        noise = torch.from_numpy(gen.standard_normal((8, 2)).astype(np.float32))
        loss = ((model(x) - noise) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()


def test_resumed_adam_step_equals_uninterrupted(tmp_path):
    def fresh():
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Tanh(), torch.nn.Linear(5, 2))
        return model, torch.optim.Adam(model.parameters(), lr=3e-2)

    model, opt = fresh()
    gen = np.random.default_rng(1)
    _train_steps(model, opt, 5, gen)
    expected = {k: v.clone() for k, v in model.state_dict().items()}

    model, opt = fresh()
    gen = np.random.default_rng(1)
    _train_steps(model, opt, 2, gen)
    save_checkpoint(tmp_path / "m", model.state_dict(), {"step": 2})
    save_state(
        tmp_path / "m",
        {
            "optimizer": opt.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "np": gen.bit_generator.state,
        },
        {"step": 2},
    )
    torch.manual_seed(999)  # disturb everything the resume must restore
    del model, opt, gen

    model, opt = fresh()
    weights, card = load_checkpoint(tmp_path / "m")
    model.load_state_dict(weights)
    state, extra = load_state(tmp_path / "m")
    opt.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["torch_rng"])
    gen = np.random.default_rng()
    gen.bit_generator.state = state["np"]
    assert card["step"] == extra["step"] == 2
    _train_steps(model, opt, 3, gen)
    for name, value in model.state_dict().items():
        assert torch.equal(value, expected[name]), name
