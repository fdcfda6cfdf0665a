"""OOD scores (secs. 4.2, 5): identities, invariances, stored tables and single-input verdicts."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import safetensors.numpy
import torch

from hvaelab.bounds import bound_samples
from hvaelab.data import InvalidInputError, binarize_fixed, load_dataset, to_tensor
from hvaelab.score_names import llr_names
from hvaelab.scores import (
    ScoreTable,
    join_scores,
    load_tables,
    ood_scores,
    save_tables,
    score_dataset,
    score_inputs,
    score_tails,
    score_tensor,
    second_stage_inputs,
    tables_path,
)
from hvaelab.train import TrainConfig, Trainer

N_REF = 64


@pytest.fixture(scope="module")
def model(tmp_path_factory, datasets):
    """hvae-tiny trained briefly on 512 real FashionMNIST images (tells white from clothes)."""
    cfg = TrainConfig(
        preset="hvae-tiny",
        epochs=3,
        train_examples=512,
        val_examples=64,
        batch_size=64,
        init_examples=64,
        lr=1e-3,
        dataset=datasets.fashionmnist,
        ood=(),
        device="cpu",
    )
    tr = Trainer(cfg, log=lambda _: None)
    tr.run(tmp_path_factory.mktemp("scores") / "run")
    return tr.model.eval()


@pytest.fixture(scope="module")
def images(datasets) -> np.ndarray:
    """The seeded subset of FashionMNIST test images that score_dataset(limit=N_REF) takes."""
    imgs = load_dataset(datasets.fashionmnist, "test").images
    idx = np.sort(np.random.default_rng(0).choice(len(imgs), N_REF, replace=False))
    return imgs[idx]


@pytest.fixture(scope="module")
def ref(model, datasets) -> ScoreTable:
    return score_dataset(model, datasets.fashionmnist, limit=N_REF)


# ----------------------------------------------------------------------------- identities
def test_score_dataset_scores_the_seeded_subset(ref, model, images, datasets):
    assert len(ref) == N_REF and ref.n_layers == 3 and ref.n_samples == 1
    assert ref.meta["dataset"] == datasets.fashionmnist and ref.meta["split"] == "test"
    assert ref.meta["indices"] == "seeded-subset-0" and ref.meta["n_dims"] == 784
    direct = score_tensor(model, images)
    for col, v in ref.columns.items():
        assert np.array_equal(v, direct.columns[col]), col
    for v in ref.columns.values():
        assert v.dtype == np.float64 and np.isfinite(v).all()


def test_ood_score_names_of_a_three_layer_model(ref):
    names = list(ood_scores(ref))
    expected = ["-ELBO", "-L>1", "-L>2", "-L>3", "LLR>1", "LLR>2", "LLR>3", "-L<1", "-L<2"]
    expected += ["-L<3"] + [f"LLR>{k}<{l_}" for k in (1, 2, 3) for l_ in (1, 2, 3)]
    expected += ["IC"]  # input complexity; a model without a second stage has no second-stage
    assert names == expected  # L<l for l = 1..L only: L<(L+1) is the ELBO itself
    bounds = {
        c + s for c in ("elbo", "L>1", "L>2", "L>3", "L<1", "L<2", "L<3") for s in ("", "_iw")
    }
    stats = {"rec>0", "rec>1", "rec>2", "kl1", "kl2", "kl3", "png_bits"}
    assert set(ref.columns) == bounds | stats
    no_lt = ScoreTable({k: v for k, v in ref.columns.items() if "<" not in k}, dict(ref.meta))
    assert not any("<" in n for n in ood_scores(no_lt))


def test_llr_identities(ref):
    c, s = ref.columns, ood_scores(ref)
    assert np.array_equal(s["-ELBO"], -c["elbo"])
    for k in (1, 2, 3):
        assert np.array_equal(s[f"LLR>{k}"], c["elbo"] - c[f"L>{k}"])  # eq. 6
        assert np.allclose(s[f"LLR>{k}"], s[f"-L>{k}"] - s["-ELBO"], rtol=0, atol=1e-9)
        for l_ in (1, 2, 3):
            assert np.array_equal(s[f"LLR>{k}<{l_}"], c[f"L<{l_}"] - c[f"L>{k}"])  # eq. 21
    # the scores differ between examples (a constant score would make every test pass)
    assert np.std(s["LLR>1"]) > 1.0


def test_l_below_l_plus_one_is_the_elbo(model, images):
    x = model.prepare(binarize_fixed(to_tensor(images[:8])))
    b = bound_samples(model, x, ks=[0], ls=[1, 4], n_samples=2)
    assert torch.equal(b.lt[4], b.gt[0])  # common random numbers: the very same pass
    assert not torch.allclose(b.lt[1], b.gt[0])


def test_iw_columns_equal_plain_columns_when_s_is_1(ref):
    assert ref.n_samples == 1
    for col in ("elbo", "L>1", "L>2", "L>3", "L<1", "L<2", "L<3"):
        assert np.allclose(ref.columns[col + "_iw"], ref.columns[col], rtol=0, atol=1e-9), col
    names = ood_scores(ref)
    assert not any(n.endswith("_S") or "iw" in n for n in names)
    iw = ood_scores(ref, iw=True)  # forced: equal to the plain scores at S = 1
    for k in (1, 2, 3):
        assert np.allclose(iw[f"LLR_S>{k} iw-both"], names[f"LLR>{k}"], atol=1e-9)


def test_iw_bound_is_at_least_the_mean_when_s_is_above_1(model, images):
    t = score_tensor(model, images[:16], n_samples=4)
    assert t.n_samples == 4
    for col in ("elbo", "L>1", "L>2", "L<1", "L<2", "L<3"):
        assert (t.columns[col + "_iw"] >= t.columns[col] - 1e-9).all(), col  # Jensen
    # the ELBO's samples differ, so importance weighting is strictly tighter
    assert (t.columns["elbo_iw"] > t.columns["elbo"] + 1e-6).all()
    # L>L with prior means involves no noise: every sample is equal
    assert np.allclose(t.columns["L>3_iw"], t.columns["L>3"], atol=1e-9)
    s = ood_scores(t)
    for k in (1, 2, 3):
        assert np.array_equal(s[f"LLR_S>{k} iw-elbo"], t.columns["elbo_iw"] - t.columns[f"L>{k}"])
        both = t.columns["elbo_iw"] - t.columns[f"L>{k}_iw"]
        assert np.array_equal(s[f"LLR_S>{k} iw-both"], both)
    assert np.array_equal(s["-ELBO_S"], -t.columns["elbo_iw"])


def _negated_bounds(n_layers: int, iw: bool) -> dict[str, str]:
    """Every bound score of :func:`ood_scores` and the ScoreTable column it negates."""
    ks = range(1, n_layers + 1)
    pairs = {"-ELBO": "elbo", **{f"-L>{k}": f"L>{k}" for k in ks}}
    pairs.update({f"-L<{l_}": f"L<{l_}" for l_ in ks})
    if iw:
        pairs.update({"-ELBO_S": "elbo_iw", **{f"-L>{k}_S": f"L>{k}_iw" for k in ks}})
    return pairs


def test_every_bound_score_is_minus_its_column(model, images):
    """Bounds enter as OOD scores negated (higher = more OOD), -L>k_S and -L<l included."""
    t = score_tensor(model, images[:16], n_samples=4)
    c, s = t.columns, ood_scores(t)
    pairs = _negated_bounds(3, iw=True)
    assert sorted(n for n in s if n.startswith("-")) == sorted(pairs)
    for name, col in pairs.items():
        assert np.array_equal(s[name], -c[col]), name
        # bounds on the log-likelihood of binary images are negative (hundreds of nats):
        # their OOD scores are positive
        assert (s[name] > 100.0).all(), name
    for k in (1, 2, 3):
        # log-mean-exp >= mean (eq. 9, Jensen): the importance-weighted bound is tighter
        assert (s[f"-L>{k}_S"] <= s[f"-L>{k}"] + 1e-9).all(), k
        for l_ in (1, 2, 3):
            # -L<l and -L>k differ by the generalised ratio LLR>k<l = L<l - L>k (eq. 21)
            gap = s[f"-L>{k}"] - s[f"-L<{l_}"]
            np.testing.assert_allclose(gap, s[f"LLR>{k}<{l_}"], rtol=0, atol=1e-9)
    assert (s["-ELBO_S"] < s["-ELBO"]).all()
    for l_ in (1, 2, 3):
        # with the ELBO: -L<l - -ELBO = ELBO - L<l, the ratio to L<(L+1) = ELBO (appendix E)
        np.testing.assert_allclose(
            s[f"-L<{l_}"] - s["-ELBO"], c["elbo"] - c[f"L<{l_}"], rtol=0, atol=1e-9
        )
    # the same holds at S = 1 (no _S scores then)
    one = score_tensor(model, images[:4])
    for name, col in _negated_bounds(3, iw=False).items():
        assert np.array_equal(ood_scores(one)[name], -one.columns[col]), name


def test_llr_names_and_tails():
    assert llr_names(3) == ["LLR>1", "LLR>2", "LLR>3"]
    assert llr_names(2, 5) == ["LLR_S>1 iw-both", "LLR_S>2 iw-both"]
    assert llr_names(2, 5, "iw-elbo") == ["LLR_S>1 iw-elbo", "LLR_S>2 iw-elbo"]
    assert score_tails("LLR>2") == "upper"
    assert score_tails("LLR_S>1 iw-both") == "upper"
    assert score_tails("-ELBO") == "two-sided"
    assert score_tails("-L>2_S") == "two-sided"
    assert score_tails("LLR>1<2") == "two-sided"


# ---------------------------------------------------------------------------- invariances
def _close(a: ScoreTable, b: ScoreTable, idx=None) -> None:
    assert a.columns.keys() == b.columns.keys()
    for col, v in a.columns.items():
        v = v if idx is None else v[idx]
        # float32 convolutions differ slightly with the batch size (bounds are ~1e2-1e3 nats)
        np.testing.assert_allclose(b.columns[col], v, rtol=1e-5, atol=1e-4, err_msg=col)


def test_scores_do_not_depend_on_batch_size_or_composition(model, images, ref):
    for bs in (7, 64):
        _close(ref, score_tensor(model, images, batch_size=bs))
    idx = np.random.default_rng(3).permutation(N_REF)[:20]  # a shuffled subset
    _close(ref, score_tensor(model, images[idx], batch_size=6), idx)
    # a tensor in [0, 1] and the uint8 array give the same table
    _close(ref, score_tensor(model, to_tensor(images)))


def test_sample_scores_are_reproducible_under_a_seed(model, images):
    a = score_tensor(model, images[:16], n_samples=2, prior="sample", seed=5)
    b = score_tensor(model, images[:16], n_samples=2, prior="sample", seed=5)
    for col in a.columns:
        assert np.array_equal(a.columns[col], b.columns[col]), col
    c = score_tensor(model, images[:16], n_samples=2, prior="sample", seed=6)
    for col in ("elbo", "L>1", "L>2", "L>3", "L<1"):
        assert not np.allclose(a.columns[col], c.columns[col]), col
    assert a.meta["seed"] == 5 and a.meta["prior"] == "sample"


def test_the_seed_chooses_the_fixed_binarization(model, images):
    """A Bernoulli model scores the binarization ``binarize_fixed(x, seed)`` of its inputs:
    scoring images equals scoring their binarization under that seed (binary images binarize
    to themselves), and another seed draws other bits, hence other bounds."""
    assert model.config.likelihood == "bernoulli"
    x = to_tensor(images[:16])
    assert ((x > 0) & (x < 1)).any(dim=(1, 2, 3)).all()  # every image has grey pixels
    for seed in (0, 1, 7):
        direct = score_tensor(model, x, seed=seed)
        pre = score_tensor(model, binarize_fixed(x, seed), seed=seed)
        for col, v in direct.columns.items():
            assert np.array_equal(v, pre.columns[col]), (seed, col)
        again = score_tensor(model, images[:16], seed=seed)
        for col, v in direct.columns.items():
            assert np.array_equal(v, again.columns[col]), (seed, col)
    # L>3 with the conditional prior means involves no sampling: it depends on the seed only
    # through the bits, and they differ
    a = score_tensor(model, x, seed=0, lt=False).columns
    b = score_tensor(model, x, seed=1, lt=False).columns
    assert (a["L>3"] != b["L>3"]).all() and (a["elbo"] != b["elbo"]).all()
    # images that are binary already get the same bits, and the same L>3, under every seed
    bits = binarize_fixed(x, 3)
    a = score_tensor(model, bits, seed=0, lt=False).columns
    b = score_tensor(model, bits, seed=1, lt=False).columns
    assert np.array_equal(a["L>3"], b["L>3"])


def test_prior_sample_and_mean_differ_only_above_k_0(model, images):
    m = score_tensor(model, images[:16], prior="mean", lt=False)
    s = score_tensor(model, images[:16], prior="sample", lt=False)
    assert np.array_equal(m.columns["elbo"], s.columns["elbo"])  # the ELBO samples z anyway
    assert not np.allclose(m.columns["L>3"], s.columns["L>3"])
    assert not any(c.startswith("L<") for c in m.columns)


# --------------------------------------------------------------------------- stored tables
def test_save_and_load_tables_round_trip(tmp_path, model, ref, datasets):
    fm, mn = datasets.fashionmnist, datasets.mnist
    ood = score_dataset(model, mn, limit=32, n_samples=2)
    path = save_tables(tmp_path / "run.scores.safetensors", [ref, ood], info={"checkpoint": "x"})
    assert path == tables_path(tmp_path / "run")
    got = load_tables(path)
    assert set(got) == {f"{fm}@S1", f"{mn}@S2"}
    for key, t in ((f"{fm}@S1", ref), (f"{mn}@S2", ood)):
        assert got[key].meta == t.meta
        # rec>1, rec>2 only feed the second stage's score: a stored table leaves them out
        assert second_stage_inputs(3) == ["rec>1", "rec>2"]
        assert set(got[key].columns) == set(t.columns) - {"rec>1", "rec>2"}
        for col, v in got[key].columns.items():
            v = t.columns[col]
            back = got[key].columns[col]
            assert back.dtype == np.float64, (key, col)
            # stored as float32: exactly the float32 rounding of every value
            assert np.array_equal(back, v.astype(np.float32).astype(np.float64)), (key, col)
            assert np.allclose(back, v, rtol=1e-7, atol=0), (key, col)
    # the bounds come out of a float32 model: float32 holds them exactly
    for col in ("elbo", "L>1", "L>3", "kl1", "rec>0", "png_bits"):
        assert np.array_equal(got[f"{fm}@S1"].columns[col], ref.columns[col]), col
    kept = load_tables(
        save_tables(tmp_path / "all.safetensors", [ref], second_stage_inputs_too=True)
    )
    assert set(kept[f"{fm}@S1"].columns) == set(ref.columns)  # what partial rows store
    with safetensors.safe_open(str(path), framework="numpy") as f:  # whole bits: float16, exact
        assert f.get_tensor(f"{fm}@S1/png_bits").dtype == np.float16
        assert f.get_tensor(f"{fm}@S1/elbo").dtype == np.float32
    assert got[f"{mn}@S2"].n_samples == 2 and len(got[f"{mn}@S2"]) == 32
    assert not list(tmp_path.glob("*.tmp"))  # atomic write leaves no temporary file


def test_saved_tables_store_each_distinct_column_once(tmp_path, ref, datasets):
    """At S = 1 the "_iw" bounds equal the plain ones; they are stored once, as aliases, and a
    column that differs from every other is stored as itself."""
    fm = datasets.fashionmnist
    assert np.array_equal(ref.columns["elbo_iw"], ref.columns["elbo"])  # eq. 9 with S = 1
    path = save_tables(tmp_path / "run.scores.safetensors", [ref], second_stage_inputs_too=True)
    with safetensors.safe_open(str(path), framework="numpy") as f:
        stored, aliases = set(f.keys()), json.loads(f.metadata()["aliases"])
    assert f"{fm}@S1/elbo_iw" not in stored and aliases[f"{fm}@S1/elbo_iw"] == f"{fm}@S1/elbo"
    assert f"{fm}@S1/L>2" in stored and f"{fm}@S1/L>2" not in aliases
    assert len(stored) + len(aliases) == len(ref.columns)
    got = load_tables(path)[f"{fm}@S1"].columns
    for col in ref.columns:  # an alias resolves to its own values, as a copy
        assert np.array_equal(got[col], ref.columns[col]), col  # float32-exact bounds
    got["elbo"][0] += 1.0
    assert got["elbo_iw"][0] != got["elbo"][0]


def test_tables_of_hvaelab_0_1_float64_without_aliases_still_load(tmp_path, ref, datasets):
    key = f"{datasets.fashionmnist}@S1"
    arrays = {
        f"{key}/{c}": np.ascontiguousarray(v, dtype=np.float64) for c, v in ref.columns.items()
    }
    meta = {"tables": json.dumps({key: ref.meta}), "info": "{}"}
    old = tmp_path / "old.scores.safetensors"
    old.write_bytes(safetensors.numpy.save(arrays, metadata=meta))
    got = load_tables(old)[key]
    assert all(np.array_equal(got.columns[c], v) for c, v in ref.columns.items())


def test_an_alias_to_a_missing_column_is_a_clear_error(tmp_path, ref, datasets):
    key = f"{datasets.fashionmnist}@S1"
    arrays = {f"{key}/elbo": np.asarray(ref.columns["elbo"], dtype=np.float32)}
    meta = {
        "tables": json.dumps({key: ref.meta}),
        "info": "{}",
        "aliases": json.dumps({f"{key}/elbo_iw": f"{key}/nothing"}),
    }
    bad = tmp_path / "bad.scores.safetensors"
    bad.write_bytes(safetensors.numpy.save(arrays, metadata=meta))
    with pytest.raises(ValueError, match="not a readable hvaelab score table file"):
        load_tables(bad)


def test_save_tables_refuses_unnamed_or_duplicate_tables(tmp_path, ref, datasets):
    unnamed = ScoreTable(dict(ref.columns), {k: v for k, v in ref.meta.items() if k != "dataset"})
    with pytest.raises(ValueError, match="meta\\['dataset'\\]"):
        save_tables(tmp_path / "a.safetensors", [unnamed])
    with pytest.raises(ValueError, match=f"{datasets.fashionmnist}@S1"):
        save_tables(tmp_path / "b.safetensors", [ref, ref])


def test_corrupt_or_foreign_table_files_raise_clear_errors(tmp_path, ref):
    with pytest.raises(FileNotFoundError, match="hvaelab tables"):
        load_tables(tmp_path / "missing.scores.safetensors")
    garbage = tmp_path / "garbage.scores.safetensors"
    garbage.write_bytes(np.random.default_rng(0).bytes(300))
    with pytest.raises(ValueError, match="not a readable hvaelab score table file"):
        load_tables(garbage)
    good = save_tables(tmp_path / "good.scores.safetensors", [ref])
    truncated = tmp_path / "truncated.scores.safetensors"
    truncated.write_bytes(good.read_bytes()[:-100])
    with pytest.raises(ValueError, match="not a readable hvaelab score table file"):
        load_tables(truncated)
    foreign = tmp_path / "weights.safetensors"
    foreign.write_bytes(safetensors.numpy.save({"w": np.zeros(3, np.float32)}))
    with pytest.raises(ValueError, match="no score-table metadata"):
        load_tables(foreign)


# ---------------------------------------------------------------------------- single inputs
def test_inputs_equal_to_reference_examples_are_not_flagged(model, images, ref):
    res = score_inputs(model, images, ref, batch_size=7)
    assert not res.is_ood.any()
    for s, p in res.p_values.items():
        assert ((p > 0) & (p <= 1)).all(), s
    # the most extreme reference example of each LLR>k, scored on its own (another batch)
    scores = ood_scores(ref)
    for name in llr_names(3):
        i = int(np.argmax(scores[name]))
        one = score_inputs(model, images[i : i + 1], ref)
        assert not one.is_ood[0], name
        assert one.p_values[name][0] == pytest.approx(2 / (N_REF + 1))  # tied with itself


def test_a_two_sided_score_doubles_the_smaller_tail(model, images, ref):
    """The reference examples at either end of a two-sided score (-ELBO, -L>k), scored alone,
    are tied with themselves only: p = min(1, 2 * 2 / (n + 1)). Catches the doubling dropped."""
    scores = ood_scores(ref)
    for name in ("-ELBO", "-L>1"):
        assert score_tails(name) == "two-sided"
        for i in (int(np.argmax(scores[name])), int(np.argmin(scores[name]))):
            one = score_inputs(model, images[i : i + 1], ref)
            assert one.p_values[name][0] == pytest.approx(4 / (N_REF + 1)), (name, i)


def test_an_all_white_image_is_flagged_with_the_deciding_score(model, images, ref):
    white = np.full((1, 28, 28), 255, np.uint8)
    batch = np.concatenate([white, images[:3]])
    res = score_inputs(model, batch, ref, names=["white", "a", "b", "c"])
    assert res.is_ood[0] and not res.is_ood[1:].any()
    assert res.verdict_scores == ["LLR>1", "LLR>2"]  # k below the top active layer
    assert res.decisive[0] in res.verdict_scores
    assert res.min_p[0] == pytest.approx(1 / (N_REF + 1)) and res.min_p[0] < res.fpr / 3
    assert res.p_values[res.decisive[0]][0] == res.min_p[0]
    # decisively: far beyond every in-distribution reference value
    assert res.scores[res.decisive[0]][0] > ood_scores(ref)[res.decisive[0]].max() + 10.0
    rows = res.rows()
    assert [r["input"] for r in rows] == ["white", "a", "b", "c"]
    r = rows[0]
    assert r["verdict"] == "OOD" and r["decided_by"] == res.decisive[0]
    assert rows[1]["verdict"] == "in-distribution"
    assert r["min_p"] == res.min_p[0] and r["bits_per_dim"] == pytest.approx(res.bits_per_dim[0])
    for s in ood_scores(ref):
        assert r[s] == pytest.approx(res.scores[s][0]) and 0 < r[f"p({s})"] <= 1
    assert res.bits_per_dim[0] == pytest.approx(res.scores["-ELBO"][0] / (784 * np.log(2)))


def test_joined_scores_equal_the_inputs_scored_together(model, images, ref):
    """An upload adds images to those already scored: scoring only the new ones and joining
    gives exactly what scoring all of them at once gives (noise keyed by each input)."""
    white = np.full((1, 28, 28), 255, np.uint8)
    both = np.concatenate([images[:3], white, images[3:5]])
    names = ["a", "b", "c", "white", "d", "e"]
    whole = score_inputs(model, both, ref, fpr=0.1, names=names)
    first = score_inputs(model, both[:4], ref, fpr=0.1, names=names[:4])
    second = score_inputs(model, both[4:], ref, fpr=0.3, names=names[4:])
    joined = join_scores(first, second, ref)
    assert joined.names == names and joined.fpr == 0.1 and joined.rule == whole.rule
    assert joined.verdict_scores == whole.verdict_scores
    assert joined.llr_verdict == whole.llr_verdict and joined.decisive == whole.decisive
    # float32 passes over batches of another size round differently (~1e-5 relative); the
    # p-values' tie tolerance absorbs that
    for field, rtol in (("scores", 1e-4), ("stats", 1e-4), ("p_values", 0)):
        a, b = getattr(joined, field), getattr(whole, field)
        assert a.keys() == b.keys(), field
        for k in b:
            np.testing.assert_allclose(a[k], b[k], rtol=rtol, err_msg=f"{field}[{k}]")
    np.testing.assert_allclose(joined.bits_per_dim, whole.bits_per_dim, rtol=1e-4)
    np.testing.assert_array_equal(joined.is_ood, whole.is_ood)
    np.testing.assert_array_equal(joined.min_p, whole.min_p)
    assert joined.is_ood[3] and joined.paper is not None
    np.testing.assert_array_equal(joined.paper.is_ood, whole.paper.is_ood)
    with pytest.raises(ValueError, match="different rules"):
        join_scores(first, dataclasses.replace(second, rule="second-stage"), ref)
    with pytest.raises(ValueError, match="different scores"):
        join_scores(first, dataclasses.replace(second, p_values=None), ref)


def test_default_input_names(model, images, ref):
    res = score_inputs(model, images[:2], ref)
    assert res.names == ["input 0", "input 1"]
    assert len(res.rows()) == 2


def test_score_inputs_without_a_reference_gives_every_score_and_no_verdict(model, images):
    res = score_inputs(model, images[:3], None)
    direct = ood_scores(score_tensor(model, images[:3]))
    assert list(res.scores) == list(direct) and "LLR>2<1" in res.scores and "-L<1" in res.scores
    for s, v in direct.items():
        assert np.array_equal(res.scores[s], v), s
    assert not res.has_reference and res.p_values is None and res.is_ood is None
    (row, *_) = res.rows()
    assert row["verdict"] is None and row["decided_by"] is None and row["min_p"] is None
    assert row["p(LLR>1)"] is None and row["LLR>1"] == pytest.approx(direct["LLR>1"][0])
    with pytest.raises(ValueError, match=r"fpr must be in \(0, 1\)"):
        score_inputs(model, images[:1], None, fpr=0.0)


def test_score_inputs_rejects_bad_inputs_clearly(model, images, ref):
    x = to_tensor(images[:2])
    with pytest.raises(ValueError, match=r"fpr must be in \(0, 1\)"):
        score_inputs(model, x, ref, fpr=0.0)
    with pytest.raises(ValueError, match=r"fpr must be in \(0, 1\)"):
        score_inputs(model, x, ref, fpr=1.5)
    with pytest.raises(ValueError, match=r"expected a batch of shape \(N, 1, 28, 28\)"):
        score_inputs(model, torch.rand(2, 1, 32, 32), ref)
    with pytest.raises(InvalidInputError, match="28x28"):
        score_inputs(model, np.zeros((2, 30, 30), np.uint8), ref)
    nan = x.clone()
    nan[0, 0, 3, 3] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        score_inputs(model, nan, ref)
    with pytest.raises(ValueError, match=r"scaled to \[0, 1\]"):
        score_inputs(model, x * 255.0, ref)
    with pytest.raises(TypeError, match="float images"):
        score_inputs(model, (x * 255).to(torch.int64), ref)
    with pytest.raises(InvalidInputError, match=r"float images must be in \[0, 1\]"):
        score_inputs(model, images[:2].astype(np.float32), ref)
    with pytest.raises(ValueError, match="1 names for 2 inputs"):
        score_inputs(model, x, ref, names=["only one"])
    two_layer = ScoreTable(dict(ref.columns), {**ref.meta, "n_layers": 2})
    with pytest.raises(ValueError, match="different model"):
        score_inputs(model, x, two_layer)
