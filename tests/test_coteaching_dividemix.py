"""Co-teaching and DivideMix, pinned on tiny hand-computed batches, and their exact resume."""

import math

import pytest
import torch
import torch.nn.functional as F
from fer_bench.methods import dividemix as dm
from fer_bench.methods.coteaching import forget_rate_at, num_kept
from methods_helpers import info_for
from resume_helpers import assert_same_history, kill_and_resume
from torch import nn

from fer_bench.losses import fit_gmm_1d, gmm_clean_probability
from fer_bench.method import Batch, LabelStore, TrainingSet
from fer_bench.registry import create_method


def _info(n=4, noise_rate=0.0):
    info = info_for(num_classes=2, num_features=2, n=n)
    info.noise_rate = noise_rate
    info.make_backbone = nn.Identity
    return info


def _batch(features, labels, epoch=0, view2=None):
    labels = torch.tensor(labels)
    return Batch(
        images=features,
        labels=labels,
        given_labels=labels.clone(),
        index=torch.arange(len(labels)),
        epoch=epoch,
        another_view=lambda: features if view2 is None else view2,
    )


def _set_linear(layer, weight):
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(weight))
        layer.bias.zero_()


def _ce2(margin):
    """Two-class cross-entropy when the true class's logit beats the other's by ``margin``."""
    return math.log(1 + math.exp(-margin))


# -- Co-teaching -----------------------------------------------------------------------------


def test_coteaching_kept_share_follows_the_paper_schedule():
    # tau = 0.2, T_k = 10, batch of 10: epoch 0 keeps 10, epoch 5 keeps 9, epoch 10+ keeps 8.
    kept = [num_kept(10, forget_rate_at(e, 0.2, 10, 1.0, "paper")) for e in (0, 5, 10, 15)]
    assert kept == [10, 9, 8, 8]
    # exponent c: tau * min(e^c / T_k, 1); c = 2 at epoch 2 forgets 0.2 * 4/10 = 0.08.
    assert forget_rate_at(2, 0.2, 10, 2.0, "paper") == pytest.approx(0.08)


def test_coteaching_official_schedule_is_shifted_linspace():
    # linspace(0, tau**c, T_k)[e + 1], tau from official epoch T_k on.
    assert forget_rate_at(0, 0.2, 10, 1.0, "official") == pytest.approx(0.2 / 9)
    assert forget_rate_at(8, 0.2, 10, 1.0, "official") == pytest.approx(0.2)
    assert forget_rate_at(7, 0.2, 10, 2.0, "official") == pytest.approx(0.04 * 8 / 9)
    assert forget_rate_at(9, 0.2, 10, 2.0, "official") == pytest.approx(0.2)  # jumps to tau
    assert forget_rate_at(3, 0.5, 1, 1.0, "official") == 0.5  # T_k = 1: tau at once


def test_coteaching_kept_count_rounds_down_and_keeps_one():
    assert num_kept(10, 0.8) == 2  # (1 - 0.8) * 10 is 1.9999999999999996 in floats
    assert num_kept(100, 0.34) == 66  # 65.99999999999999
    assert num_kept(64, 0.3) == 44  # int(44.8)
    assert num_kept(3, 0.9) == 1


def _coteaching(**options):
    m = create_method("coteaching", backbone=nn.Identity(), num_features=2, info=_info(), **options)
    _set_linear(m.classifier, [[1.0, 0.0], [0.0, 1.0]])  # network f: logits = x
    _set_linear(m.peer.classifier, [[0.0, 1.0], [1.0, 0.0]])  # network g: logits swapped
    return m


FEATS = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 0.0], [0.0, 2.0]])
LABELS = [0, 0, 1, 1]
# f's margins (true minus other logit): +1, -1, -2, +2 -> f keeps {0, 3};
# g's margins: -1, +1, +2, -2 -> g keeps {1, 2}.


def test_coteaching_each_network_learns_from_its_peers_small_loss_samples():
    m = _coteaching(forget_rate=0.5, num_gradual=1)
    out = m.loss(_batch(FEATS, LABELS, epoch=1), LabelStore(torch.tensor(LABELS)))
    # f is updated on g's selection {1, 2}; g on f's selection {0, 3}.
    assert out.logs["loss_first"].item() == pytest.approx((_ce2(-1) + _ce2(-2)) / 2)
    assert out.logs["loss_peer"].item() == pytest.approx((_ce2(-1) + _ce2(-2)) / 2)
    assert out.loss.item() == pytest.approx(_ce2(-1) + _ce2(-2))
    assert out.weights.tolist() == [1.0, 0.0, 0.0, 1.0]  # what f kept
    assert out.logs["kept_share"].item() == 0.5
    out.loss.backward()
    # dL_f/dW = mean over g's kept {1, 2} of (softmax - onehot) x^T.
    grad = torch.zeros(2, 2)
    for i in (1, 2):
        z = FEATS[i]
        p1 = 1 / (1 + math.exp(z[0] - z[1]))  # softmax of class 1
        residual = torch.tensor([1 - p1, p1]) - F.one_hot(torch.tensor(LABELS[i]), 2)
        grad += residual[:, None] * z[None, :] / 2
    assert torch.allclose(m.classifier.weight.grad, grad, atol=1e-6)


def test_coteaching_official_loss_scale_divides_by_the_kept_count_again():
    m = _coteaching(forget_rate=0.5, num_gradual=1, loss_scale="official")
    out = m.loss(_batch(FEATS, LABELS, epoch=1), LabelStore(torch.tensor(LABELS)))
    assert out.logs["loss_first"].item() == pytest.approx((_ce2(-1) + _ce2(-2)) / 2 / 2)


def test_coteaching_first_epoch_keeps_all_and_forget_rate_defaults_to_noise_rate():
    info = _info(noise_rate=0.25)
    m = create_method("coteaching", backbone=nn.Identity(), num_features=2, info=info)
    assert m.tau == 0.25
    out = m.loss(_batch(FEATS, LABELS, epoch=0), LabelStore(torch.tensor(LABELS)))
    assert out.weights.tolist() == [1.0] * 4


def test_coteaching_predicts_with_first_network_or_the_mean_softmax():
    x = torch.tensor([[1.0, 0.0]])
    assert _coteaching().predict(x).tolist() == [[1.0, 0.0]]
    probs = _coteaching(predict_with="mean").predict(x).softmax(1)
    p_f = 1 / (1 + math.exp(-1))  # f: logits [1, 0]; g: logits [0, 1]
    assert probs[0, 0].item() == pytest.approx((p_f + (1 - p_f)) / 2)


# -- DivideMix: GMM ----------------------------------------------------------------------------


def _python_gmm(x, max_iter=10, tol=1e-2, reg=5e-4):
    """Plain-float EM from the 2-means split: the scikit-learn procedure, written out."""
    xs = sorted(x)
    best = min(
        range(1, len(xs)),
        key=lambda i: (
            sum((v - sum(xs[:i]) / i) ** 2 for v in xs[:i])
            + sum((v - sum(xs[i:]) / (len(xs) - i)) ** 2 for v in xs[i:])
        ),
    )
    resp = [[1.0, 0.0] if v <= xs[best - 1] else [0.0, 1.0] for v in x]

    def m_step(resp):
        nk = [sum(r[k] for r in resp) + 10 * 2.220446049250313e-16 for k in (0, 1)]
        mu = [sum(r[k] * v for r, v in zip(resp, x, strict=True)) / nk[k] for k in (0, 1)]
        var = [
            sum(r[k] * (v - mu[k]) ** 2 for r, v in zip(resp, x, strict=True)) / nk[k] + reg
            for k in (0, 1)
        ]
        return [n / sum(nk) for n in nk], mu, var

    def e_step(w, mu, var):
        out, ll = [], 0.0
        for v in x:
            joint = [
                w[k]
                * math.exp(-((v - mu[k]) ** 2) / (2 * var[k]))
                / math.sqrt(2 * math.pi * var[k])
                for k in (0, 1)
            ]
            out.append([j / sum(joint) for j in joint])
            ll += math.log(sum(joint)) / len(x)
        return out, ll

    params, bound = m_step(resp), -math.inf
    for _ in range(max_iter):
        resp, ll = e_step(*params)
        params = m_step(resp)
        if abs(ll - bound) < tol:
            break
        bound = ll
    return params, e_step(*params)[0]


def test_gmm_matches_plain_em_on_overlapping_modes():
    x = [0.0, 0.05, 0.1, 0.12, 0.15, 0.2, 0.22, 0.3, 0.35, 0.5, 0.55, 0.6, 0.7, 0.8, 1.0]
    (w, mu, var), post = _python_gmm(x)
    weights, means, variances, posterior = fit_gmm_1d(torch.tensor(x, dtype=torch.float64))
    assert weights.tolist() == pytest.approx(w, abs=1e-9)
    assert means.tolist() == pytest.approx(mu, abs=1e-9)
    assert variances.tolist() == pytest.approx(var, abs=1e-9)
    assert posterior[:, 0].tolist() == pytest.approx([p[0] for p in post], abs=1e-9)
    assert 0.01 < post[8][0] < 0.99  # the modes overlap: soft posteriors


def test_gmm_separated_modes_by_hand():
    # Split {0, 0.1} | {0.9, 1}: means 0.05 / 0.95, variances 0.0025 + reg_covar 5e-4.
    weights, means, variances, posterior = fit_gmm_1d(torch.tensor([0.0, 0.1, 0.9, 1.0]))
    assert means.tolist() == pytest.approx([0.05, 0.95])
    assert variances.tolist() == pytest.approx([0.003, 0.003])
    assert weights.tolist() == pytest.approx([0.5, 0.5])


def test_gmm_clean_probability_on_two_loss_clusters():
    low = [0.08, 0.1, 0.12, 0.09, 0.11, 0.1]
    high = [0.88, 0.9, 0.92, 0.9]
    prob = gmm_clean_probability(torch.tensor(low + high))
    assert (prob[: len(low)] > 0.9).all() and (prob[len(low) :] < 0.1).all()
    # min-max normalised first: an affine change of the losses changes nothing.
    moved = gmm_clean_probability(torch.tensor(low + high) * 7 + 3)
    assert torch.allclose(prob, moved, atol=1e-6)


# -- DivideMix: MixMatch -----------------------------------------------------------------------


def test_sharpen_by_hand():
    out = dm.sharpen(torch.tensor([[0.6, 0.4]]), 0.5)
    assert out[0].tolist() == pytest.approx([0.36 / 0.52, 0.16 / 0.52])


def _linear_net(weight):
    net = nn.Linear(2, 2)
    _set_linear(net, weight)
    return net


def _softmax2(z):
    e = [math.exp(v) for v in z]
    return [v / sum(e) for v in e]


def test_mixmatch_loss_with_all_labeled_is_plain_mixup_cross_entropy():
    net = _linear_net([[1.0, -1.0], [0.5, 2.0]])
    x = [[1.0, 0.0], [0.0, 1.0], [2.0, 1.0], [-1.0, 0.5]]
    y = [[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [1.0, 0.0]]
    perm, lam = [2, 3, 0, 1], 0.7
    lx, lu, reg = dm.mixmatch_loss(
        net,
        torch.tensor(x),
        torch.tensor(y),
        torch.ones(4, dtype=torch.bool),
        torch.tensor(lam),
        torch.tensor(perm),
    )
    ce, mean_p = 0.0, [0.0, 0.0]
    for i, j in enumerate(perm):
        xm = [lam * a + (1 - lam) * b for a, b in zip(x[i], x[j], strict=True)]
        ym = [lam * a + (1 - lam) * b for a, b in zip(y[i], y[j], strict=True)]
        p = _softmax2([xm[0] - xm[1], 0.5 * xm[0] + 2 * xm[1]])
        ce -= sum(t * math.log(q) for t, q in zip(ym, p, strict=True)) / 4
        mean_p = [m + q / 4 for m, q in zip(mean_p, p, strict=True)]
    assert lx.item() == pytest.approx(ce, rel=1e-5)
    assert lu.item() == 0.0
    assert reg.item() == pytest.approx(sum(0.5 * math.log(0.5 / m) for m in mean_p), rel=1e-5)


def test_mixmatch_loss_with_none_labeled_is_squared_error():
    net = _linear_net([[0.0, 0.0], [0.0, 0.0]])  # uniform predictions
    t = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    args = (torch.zeros(2, 2), t, torch.zeros(2, dtype=torch.bool), torch.tensor(1.0))
    lx, lu, _ = dm.mixmatch_loss(net, *args, torch.tensor([0, 1]))
    assert lx.item() == 0.0
    assert lu.item() == pytest.approx(0.5)  # (0.5^2 + 0.5^2) per sample, paper's sum over C
    _, lu_official, _ = dm.mixmatch_loss(net, *args, torch.tensor([0, 1]), lu_per_class=True)
    assert lu_official.item() == pytest.approx(0.25)  # also divided by C = 2


def _dividemix(n=4, **options):
    info = _info(n=n)
    m = create_method("dividemix", backbone=nn.Identity(), num_features=2, info=info, **options)
    _set_linear(m.classifier, [[1.0, 0.0], [0.0, 1.0]])
    _set_linear(m.peer.classifier, [[0.5, -1.0], [1.0, 1.5]])
    return m


def test_dividemix_warmup_is_cross_entropy_of_both_networks_on_two_views():
    m = _dividemix(warmup_epochs=2, warmup_penalty=True)
    x1, x2 = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    out = m.loss(_batch(x1, [0], epoch=1, view2=x2), LabelStore(torch.tensor([0])))
    p_f = _softmax2([1.0, 0.0])  # network 1 on view 1
    p_g = _softmax2([-1.0, 1.5])  # network 2 on view 2
    ce = -math.log(p_f[0]) - math.log(p_g[0])
    neg_entropy = sum(q * math.log(q) for q in p_f) + sum(q * math.log(q) for q in p_g)
    assert out.loss.item() == pytest.approx(ce + neg_entropy, rel=1e-5)
    assert out.weights is None


def test_dividemix_step_with_all_labeled_is_mixup_cross_entropy_of_both(monkeypatch):
    m = _dividemix(warmup_epochs=0, lambda_u=25.0)
    m.clean_prob.fill_(1.0)  # every sample clean with w = 1: refined targets are the labels
    lam, perm = 0.8, [1, 0, 3, 2]
    monkeypatch.setattr(dm, "draw_mix", lambda n, a, d: (torch.tensor(lam), torch.tensor(perm)))
    x1 = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    x2 = torch.tensor([[0.5, 0.5], [2.0, -1.0]])
    out = m.loss(_batch(x1, [0, 1], epoch=3, view2=x2), LabelStore(torch.tensor([0, 1])))
    inputs, y = x1.tolist() + x2.tolist(), [[1, 0], [0, 1], [1, 0], [0, 1]]
    expected = 0.0
    for w in ([[1.0, 0.0], [0.0, 1.0]], [[0.5, -1.0], [1.0, 1.5]]):
        ce, mean_p = 0.0, [0.0, 0.0]
        for i, j in enumerate(perm):
            xm = [lam * a + (1 - lam) * b for a, b in zip(inputs[i], inputs[j], strict=True)]
            ym = [lam * a + (1 - lam) * b for a, b in zip(y[i], y[j], strict=True)]
            p = _softmax2([w[0][0] * xm[0] + w[0][1] * xm[1], w[1][0] * xm[0] + w[1][1] * xm[1]])
            ce -= sum(t * math.log(q) for t, q in zip(ym, p, strict=True)) / 4
            mean_p = [a + q / 4 for a, q in zip(mean_p, p, strict=True)]
        expected += ce + sum(0.5 * math.log(0.5 / a) for a in mean_p)
    assert out.loss.item() == pytest.approx(expected, rel=1e-5)
    assert out.logs["lu_first"].item() == 0.0
    assert out.weights.tolist() == [1.0, 1.0]


def test_dividemix_trains_each_network_on_the_peers_division():
    m = _dividemix(n=4, warmup_epochs=0)
    m.clean_prob.copy_(torch.tensor([[0.9, 0.9, 0.9, 0.1], [0.2, 0.2, 0.2, 0.8]]))
    out = m.loss(_batch(FEATS, LABELS, epoch=0), LabelStore(torch.tensor(LABELS)))
    assert out.logs["labeled_share_first"].item() == 0.25  # network 2's row: only sample 3
    assert out.logs["labeled_share_peer"].item() == 0.75  # network 1's row
    assert out.weights.tolist() == pytest.approx([0.9, 0.9, 0.9, 0.1])


def test_dividemix_lambda_u_ramps_up_over_the_step_fraction():
    m = _dividemix(n=30, warmup_epochs=2, lambda_u=25.0, rampup_epochs=16)
    m._step = 1  # batch of 10 in 30 samples: 3 steps per epoch
    assert m.ramp(3, 10) == pytest.approx(25 * (3 + 1 / 3 - 2) / 16)
    assert m.ramp(1, 10) == 0.0
    assert m.ramp(40, 10) == 25.0


def test_dividemix_before_epoch_fits_each_networks_losses():
    m = _dividemix(n=10, warmup_epochs=1)
    feats = torch.tensor([[3.0, 0.0]] * 6 + [[0.0, 3.0]] * 4)
    labels = torch.zeros(10, dtype=torch.long)  # the last four contradict network 1

    def scan(fn):
        return fn(feats, labels, torch.arange(10))

    m.before_epoch(0, TrainingSet(scan, 10))  # warm-up: nothing fitted
    assert (m.clean_prob == 1).all()
    m.before_epoch(1, TrainingSet(scan, 10))
    for k, net in enumerate((lambda x: m.classifier(x), m.peer)):
        ce = F.cross_entropy(net(feats), labels, reduction="none")
        assert torch.allclose(m.clean_prob[k], gmm_clean_probability(ce))
    assert (m.clean_prob[0, :6] > 0.9).all() and (m.clean_prob[0, 6:] < 0.1).all()


def test_dividemix_predicts_with_mean_softmax_or_mean_logits():
    x = torch.tensor([[1.0, 0.0]])
    p_f, p_g = _softmax2([1.0, 0.0]), _softmax2([0.5, 1.0])
    probs = _dividemix().predict(x).softmax(1)
    assert probs[0].tolist() == pytest.approx([(a + b) / 2 for a, b in zip(p_f, p_g, strict=True)])
    logits = _dividemix(predict_with="mean_logits").predict(x)
    assert logits[0].tolist() == pytest.approx([0.75, 0.5])


# -- resume ------------------------------------------------------------------------------------


@pytest.fixture
def one_thread():
    """One intra-op thread: on a shared, loaded CPU two spinning threads are many times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize(
    "method, options",
    [
        ("coteaching", {"forget_rate": 0.3, "num_gradual": 2}),
        ("dividemix", {"warmup_epochs": 1, "lambda_u": 25.0}),
    ],
)
def test_resume_after_epoch_one_matches_an_uninterrupted_run(
    method, options, tiny_run_config, tmp_path, one_thread
):
    cfg = tiny_run_config(
        method=method,
        noise=30,
        epochs=3,
        batch_size=16,
        image_size=16,
        dataset_options={"num_train": 64, "num_test": 16, "size": 16},
        method_options=options,
    )
    assert_same_history(*kill_and_resume(cfg, tmp_path / "ckpt.pt", after=1))
