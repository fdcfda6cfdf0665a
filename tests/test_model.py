"""The hierarchical VAE: shapes, finiteness, gradients, the k / l semantics and the cache."""

import pytest
import torch

from hvaelab.config import HVAEConfig, get_preset
from hvaelab.model import HVAE


def _model(preset: str = "hvae-tiny", seed: int = 0, n: int = 32) -> tuple[HVAE, torch.Tensor]:
    torch.manual_seed(seed)
    model = HVAE(get_preset(preset))
    x = (torch.rand(n, *model.config.in_shape) > 0.5).float()
    x = model.prepare(x)
    model.initialize(x)
    return model, x


def test_shapes_and_finiteness_grey():
    model, x = _model("hvae-grey", n=8)
    out = model(x)
    assert [tuple(layer.z.shape[1:]) for layer in out.layers] == [(8, 14, 14), (16,), (8,)]
    assert out.log_px.shape == (8,) and out.kl.shape == (8,)
    for layer in out.layers:
        assert torch.isfinite(layer.kl).all() and torch.isfinite(layer.z).all()
        assert layer.posterior is not None and (layer.posterior.var > 0).all()
        assert layer.source == "posterior"
    assert torch.isfinite(out.log_px).all() and (out.log_px < 0).all()
    assert out.reconstruction().shape == x.shape


def test_shapes_natural_preset_on_random_data():
    model, x = _model("hvae-natural", n=4)
    assert x.min() >= -1 and x.max() <= 1
    out = model(x, k=1)
    assert [tuple(layer.z.shape[1:]) for layer in out.layers] == [
        (8, 16, 16),
        (16, 8, 8),
        (32, 4, 4),
    ]
    assert torch.isfinite(out.bound).all()
    rec = out.reconstruction()
    assert rec.shape == (4, 3, 32, 32) and rec.min() >= 0 and rec.max() <= 1


def test_data_dependent_init_gives_standard_gaussian_layers():
    model, x = _model("hvae-tiny", n=256)
    out = model(x)
    for layer in out.layers:
        # pre-activations start at zero mean / unit variance -> variances around softplus(N(0,1))
        assert 0.5 < layer.posterior.var.mean().item() < 2.0
        assert abs(layer.posterior.mean.mean().item()) < 0.3


def test_gradients_reach_every_parameter():
    model, x = _model("hvae-tiny")
    out = model(x)
    (-out.bound.mean()).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum()]
    assert missing == []


@pytest.mark.parametrize("k", [0, 1, 2, 3])
def test_k_takes_lowest_layers_from_prior(k):
    model, x = _model()
    out = model(x, k=k)
    for layer in out.layers:
        assert layer.source == ("prior" if layer.index <= k else "posterior")
        if layer.index <= k:
            assert torch.equal(layer.kl, torch.zeros_like(layer.kl))
        else:
            assert layer.kl.abs().sum() > 0


def test_prior_mean_mode_uses_conditional_prior_means():
    model, x = _model()
    out = model(x, k=2, prior="mean")
    assert torch.allclose(out.layers[0].z, out.layers[0].prior.mean)
    assert torch.allclose(out.layers[1].z, out.layers[1].prior.mean)


def test_below_k_encoder_forwards_posterior_means():
    """Appendix D: z_{k+1}'s posterior is computed from the means of the layers below."""
    model, x = _model()
    cache = model.encode_means(x)
    out = model(x, k=1, posterior="mean", prior="mean")
    assert torch.allclose(out.layers[1].posterior.mean, cache.q[2].mean, atol=1e-5)
    out0 = model(x, k=0)  # k = 0 samples z_1 and feeds the sample upward
    assert not torch.allclose(out0.layers[1].posterior.mean, cache.q[2].mean, atol=1e-3)


def test_l_takes_top_layers_from_prior_and_full_l_is_elbo():
    model, x = _model()
    L = model.n_layers
    eps = {i: torch.randn(x.shape[0], *model.shapes[i]) for i in range(1, L + 1)}
    elbo = model(x, eps=eps).bound
    assert torch.allclose(model(x, l=L + 1, eps=eps).bound, elbo)
    out = model(x, l=2, eps=eps)
    assert [layer.source for layer in out.layers] == ["posterior", "prior", "prior"]
    assert out.layers[2].posterior is None


@pytest.mark.parametrize("skip", [True, False])
def test_skip_connections_carry_z_i_two_layers_up_and_down(skip):
    """Skips feed z_{i+2} into the generative stage of z_i (x's likelihood gets z_2, p(z_1 | .)
    gets z_3) and z_{i-2} into the inference stage of z_i (q(z_2 | .) gets x, q(z_3 | .) gets
    z_1). Each path is isolated by holding the layer in between fixed through the noise eps:
    the output moves with the skip, and without skips (the control) it does not."""
    torch.manual_seed(0)
    model = HVAE(get_preset("hvae-tiny", skip=skip)).double()  # float64: exact controls
    x = model.prepare((torch.rand(16, 1, 28, 28) > 0.5).double())
    model.initialize(x)
    model.eval()
    eps = {i: torch.randn(16, *model.shapes[i], dtype=torch.float64) for i in (1, 2, 3)}

    def moved(a: torch.Tensor, b: torch.Tensor) -> bool:
        return (a - b).abs().max().item() > 1e-3

    def same(a: torch.Tensor, b: torch.Tensor) -> bool:
        return torch.allclose(a, b, rtol=0, atol=1e-9)

    with torch.no_grad():
        base = model(x, eps=eps)
        z1, z2 = base.layers[0].z, base.layers[1].z
        # generative z_2 -> x: new noise for z_2 only (z_1 is inferred below it, unchanged)
        out = model(x, eps={**eps, 2: torch.randn_like(eps[2])})
        assert same(out.layers[0].z, z1) and moved(out.layers[1].z, z2)
        assert moved(out.params, base.params) == skip
        # generative z_3 -> z_1: new noise for z_3 only (z_1, z_2 and so p(x | .) unchanged)
        out = model(x, eps={**eps, 3: torch.randn_like(eps[3])})
        assert same(out.layers[0].z, z1) and same(out.layers[1].z, z2)
        assert same(out.params, base.params)
        assert moved(out.layers[0].prior.mean, base.layers[0].prior.mean) == skip
        # inference z_1 -> z_3: new noise for z_1, and z_2's noise chosen to keep z_2
        e1 = {**eps, 1: torch.randn_like(eps[1])}
        q2 = model(x, eps=e1).layers[1].posterior
        out = model(x, eps={**e1, 2: (z2 - q2.mean) / q2.std})
        assert moved(out.layers[0].z, z1) and same(out.layers[1].z, z2)
        assert moved(out.layers[2].posterior.mean, base.layers[2].posterior.mean) == skip
        # inference x -> z_2: other pixels, and z_1's noise chosen to keep z_1
        x2 = model.prepare((torch.rand(16, 1, 28, 28) > 0.5).double())
        q1 = model(x2, eps=eps).layers[0].posterior
        out = model(x2, eps={**eps, 1: (z1 - q1.mean) / q1.std})
        assert same(out.layers[0].z, z1)
        assert moved(out.layers[1].posterior.mean, base.layers[1].posterior.mean) == skip


def test_cache_gives_the_same_pass():
    model, x = _model()
    eps = {i: torch.randn(x.shape[0], *model.shapes[i]) for i in range(1, 4)}
    cache = model.encode_means(x)
    for k in range(4):
        a = model(x, k=k, eps=eps, prior="mean")
        b = model(x, k=k, eps=eps, prior="mean", cache=cache)
        assert torch.allclose(a.bound, b.bound, atol=1e-4, rtol=1e-5)


def test_same_noise_same_result_and_eval_is_batch_independent():
    model, x = _model()
    model.eval()
    eps = {i: torch.randn(x.shape[0], *model.shapes[i]) for i in range(1, 4)}
    full = model(x, k=1, eps=eps).bound
    half = model(x[:7], k=1, eps={i: e[:7] for i, e in eps.items()}).bound
    assert torch.allclose(full[:7], half, atol=1e-4)


def test_sampling_from_the_prior():
    model, _ = _model()
    g = torch.Generator().manual_seed(1)
    imgs = model.sample(5, generator=g)
    assert imgs.shape == (5, 1, 28, 28) and imgs.min() >= 0 and imgs.max() <= 1
    g2 = torch.Generator().manual_seed(1)
    assert torch.equal(imgs, model.sample(5, generator=g2))
    bits = model.sample(5, generator=g, mode="sample")
    assert set(bits.unique().tolist()) <= {0.0, 1.0}


def test_bad_arguments_raise_clear_errors():
    model, x = _model()
    with pytest.raises(ValueError, match="k must be in 0..3"):
        model(x, k=4)
    with pytest.raises(ValueError, match="expected a batch of shape"):
        model(x[:, :, :20])
    with pytest.raises(ValueError, match="'sample' or 'mean'"):
        model(x, prior="mode")
    with pytest.raises(ValueError, match="latent_kinds has 2 entries"):
        HVAEConfig(latent_kinds=("conv", "dense"))


def test_config_round_trip():
    cfg = get_preset("hvae-natural")
    assert type(cfg).from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown HVAEConfig fields"):
        HVAEConfig.from_dict({"nonsense": 1})


def test_weight_norm_cache_follows_every_change_of_the_parameters():
    """Without autograd the normalised weight is cached; any change of v or g (in place, as an
    optimizer step or load_state_dict does, or a new tensor) must be seen at once."""
    from hvaelab.model.layers import WNConv2d

    torch.manual_seed(0)
    conv = WNConv2d(2, 3, 3)
    x = torch.randn(4, 2, 5, 5)

    def fresh(inp: torch.Tensor = x) -> torch.Tensor:
        with torch.enable_grad():
            return conv(inp).detach()

    with torch.no_grad():
        first = conv(x)
        assert conv._cached is not None
        assert torch.equal(first, fresh())
        conv.v.mul_(-2.0)  # in place: the version counter moves
        assert torch.allclose(conv(x), fresh()) and not torch.allclose(conv(x), first)
        conv.g.add_(0.5)
        assert torch.allclose(conv(x), fresh())
        conv.load_state_dict({k: torch.randn_like(v) for k, v in conv.state_dict().items()})
        assert torch.allclose(conv(x), fresh())
        conv.double()  # a new storage and dtype
        assert torch.allclose(conv(x.double()), fresh(x.double()))
