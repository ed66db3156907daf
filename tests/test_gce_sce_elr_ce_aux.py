"""GCE, SCE, ELR and CE+aux: their losses pinned on tiny batches against values worked out by hand,
ELR's per-sample targets over two steps and across an interrupted run, and ce_aux as the exact
"CE + MTAC's auxiliary tasks" control."""

import math

import pytest
import torch
import torch.nn.functional as F
from methods_helpers import info_for
from resume_helpers import assert_same_history, kill_and_resume
from torch import nn

from fer_bench.losses import generalized_cross_entropy
from fer_bench.method import Batch, LabelStore
from fer_bench.options import declared_options
from fer_bench.registry import METHODS, create_method

P = [[0.5, 0.3, 0.2], [0.5, 0.3, 0.2]]  # the softmax of log(P)
LABELS = [0, 2]  # p_y = 0.5 and 0.2


def batch(labels, features, index=None, epoch=0, va=None, au=None):
    labels = torch.tensor(labels)
    return Batch(
        images=features,
        labels=labels,
        given_labels=labels.clone(),
        index=torch.arange(len(labels)) if index is None else torch.tensor(index),
        epoch=epoch,
        valence_arousal=va,
        action_units=au,
    )


def method_on_logits(name, num_classes=3, n=4, info=None, **options):
    """A method whose features are its logits: identity backbone, identity classifier."""
    info = info or info_for(num_classes=num_classes, num_features=num_classes, n=n)
    m = create_method(name, backbone=nn.Identity(), num_features=num_classes, info=info, **options)
    with torch.no_grad():
        m.classifier.weight.copy_(torch.eye(num_classes))
        m.classifier.bias.zero_()
    return m


def log_probs(rows):
    return torch.log(torch.tensor(rows))


# -- GCE ---------------------------------------------------------------------------------------


def test_gce_loss_is_one_minus_p_to_the_q_over_q():
    m = method_on_logits("gce", q=0.7)
    out = m.loss(batch(LABELS, log_probs(P)), None)
    expected = ((1 - 0.5**0.7) / 0.7 + (1 - 0.2**0.7) / 0.7) / 2
    assert out.loss.item() == pytest.approx(expected, rel=1e-6)
    # q = 1: 1 - p_y, half the mean absolute error sum_k |p_k - e_k|.
    m1 = method_on_logits("gce", q=1.0)
    mae = [
        sum(abs(p - (k == y)) for k, p in enumerate(row)) for row, y in zip(P, LABELS, strict=True)
    ]
    assert m1.loss(batch(LABELS, log_probs(P)), None).loss.item() == pytest.approx(
        sum(mae) / 2 / 2, rel=1e-6
    )


def test_gce_tends_to_the_cross_entropy_as_q_goes_to_zero():
    ce = -math.log(0.2)
    previous = math.inf
    for q in (1e-1, 1e-2, 1e-3, 1e-4):
        loss = generalized_cross_entropy(log_probs([P[1]]), torch.tensor([2]), q).item()
        gap = abs(loss - ce)
        # (1 - e^{q log p}) / q = -log p - q (log p)^2 / 2 - ...: the gap shrinks like q.
        assert gap < previous and gap == pytest.approx(q * ce**2 / 2, rel=0.1, abs=1e-5)
        previous = gap
    assert loss == pytest.approx(ce, rel=1e-4)


def test_gce_gradient_is_finite_where_the_label_probability_underflows():
    logits = torch.tensor([[0.0, -200.0]], requires_grad=True)  # p_y = e^-200 is 0 in fp32
    loss = generalized_cross_entropy(logits, torch.tensor([1]), 0.7).sum()
    loss.backward()
    assert loss.item() == pytest.approx(1 / 0.7)  # (1 - 0) / q
    assert torch.isfinite(logits.grad).all()


# -- SCE ---------------------------------------------------------------------------------------


def hand_rce(row, label, A):
    """-sum_k p_k log q_k with q one-hot and log 0 := A."""
    return -sum(p * (0.0 if k == label else A) for k, p in enumerate(row))


def test_sce_reverse_term_clips_log_zero_to_A():
    # Sample 1: -(0.5 log 1 + 0.3 A + 0.2 A) = 0.5 * 4 = 2.0; sample 2: 0.8 * 4 = 3.2.
    assert hand_rce(P[0], 0, -4) == pytest.approx(2.0)
    assert hand_rce(P[1], 2, -4) == pytest.approx(3.2)
    m = method_on_logits("sce", alpha=0.0, beta=1.0)
    out = m.loss(batch(LABELS, log_probs(P)), None)
    assert out.loss.item() == pytest.approx((2.0 + 3.2) / 2, rel=1e-6)
    assert out.logs["rce"].item() == pytest.approx(2.6, rel=1e-6)


def test_sce_is_alpha_ce_plus_beta_rce():
    m = method_on_logits("sce")  # defaults: alpha 0.1, beta 1, A -4
    out = m.loss(batch(LABELS, log_probs(P)), None)
    ce = (-math.log(0.5) - math.log(0.2)) / 2
    assert out.logs["ce"].item() == pytest.approx(ce, rel=1e-6)
    assert out.loss.item() == pytest.approx(0.1 * ce + 1.0 * 2.6, rel=1e-6)


def test_sce_official_clips_label_at_1e4_and_probabilities_at_1e7():
    # The official code's A is log(1e-4): RCE = 9.2103 * (1 - p_y).
    m = method_on_logits("sce", alpha=1.0, beta=0.0, A=math.log(1e-4), prob_floor=1e-7)
    logits = torch.tensor([[0.0, -30.0, 0.0]], requires_grad=True)  # p_1 ~ e^-30 / 2 < 1e-7
    out = m.loss(batch([1], logits), None)
    assert out.logs["ce"].item() == pytest.approx(-math.log(1e-7), rel=1e-6)
    out.loss.backward()
    assert (logits.grad == 0).all()  # clipped: a constant, no gradient
    rce = hand_rce([0.5, 0.0, 0.5], 0, math.log(1e-4))
    assert rce == pytest.approx(0.5 * 9.2103, rel=1e-4)
    m = method_on_logits("sce", alpha=0.0, beta=1.0, A=math.log(1e-4))
    out = m.loss(batch([0], torch.log(torch.tensor([[0.5, 1e-30, 0.5]]))), None)
    assert out.loss.item() == pytest.approx(rce, rel=1e-5)


# -- ELR ---------------------------------------------------------------------------------------


def softmax2(a, b):
    pa = 1 / (1 + math.exp(b - a))
    return [pa, 1 - pa]


def test_elr_targets_and_regularizer_for_two_samples_over_two_steps():
    m = method_on_logits("elr", num_classes=2, n=4, beta=0.7, lam=3.0)
    index, labels = [2, 0], [0, 1]
    steps = [[[1.0, 0.0], [0.5, 1.5]], [[2.0, -1.0], [0.0, 0.2]]]
    targets = {2: [0.0, 0.0], 0: [0.0, 0.0]}
    for logits in steps:
        out = m.loss(batch(labels, torch.tensor(logits), index=index), None)
        reg, ce = 0.0, 0.0
        for i, (row, y) in zip(index, zip(logits, labels, strict=True), strict=True):
            p = softmax2(*row)  # nowhere near the 1e-4 clamp
            targets[i] = [0.7 * t + 0.3 * pk for t, pk in zip(targets[i], p, strict=True)]
            reg += math.log(1 - sum(t * pk for t, pk in zip(targets[i], p, strict=True))) / 2
            ce += -math.log(p[y]) / 2
        assert out.logs["elr"].item() == pytest.approx(reg, rel=1e-6)
        assert out.loss.item() == pytest.approx(ce + 3.0 * reg, rel=1e-6)
        for i in index:
            assert m.targets[i].tolist() == pytest.approx(targets[i], rel=1e-6)
    # Step 2 by hand, sample 2: p1 = softmax(1, 0), p2 = softmax(2, -1), t = 0.21 p1 + 0.3 p2.
    p1, p2 = softmax2(1.0, 0.0), softmax2(2.0, -1.0)
    assert m.targets[2].tolist() == pytest.approx(
        [0.21 * p1[0] + 0.3 * p2[0], 0.21 * p1[1] + 0.3 * p2[1]], rel=1e-6
    )
    assert m.targets[[1, 3]].abs().sum() == 0  # not drawn: still zero


def test_elr_clamps_like_the_official_code():
    # p ~ (1, 0, 0) -> clamped (1 - 1e-4, 1e-4, 1e-4): the target takes it renormalised (sum
    # 1.0001), the regularizer the clamped p as is.
    m = method_on_logits("elr", num_classes=3, n=2, beta=0.7, lam=1.0)
    out = m.loss(batch([0], torch.tensor([[40.0, 0.0, 0.0]]), index=[1]), None)
    clamped = [1 - 1e-4, 1e-4, 1e-4]
    target = [0.3 * c / sum(clamped) for c in clamped]
    assert m.targets[1].tolist() == pytest.approx(target, rel=1e-6)
    expected = math.log(1 - sum(t * c for t, c in zip(target, clamped, strict=True)))
    assert out.logs["elr"].item() == pytest.approx(expected, rel=1e-5)


def test_elr_repeated_index_takes_its_last_update_everywhere():
    m = method_on_logits("elr", num_classes=2, n=3, beta=0.7)
    out = m.loss(batch([0, 0], torch.tensor([[1.0, 0.0], [0.0, 3.0]]), index=[1, 1]), None)
    last = [0.3 * p for p in softmax2(0.0, 3.0)]
    assert m.targets[1].tolist() == pytest.approx(last, rel=1e-6)
    reg = (
        math.log(1 - sum(t * p for t, p in zip(last, softmax2(1.0, 0.0), strict=True)))
        + math.log(1 - sum(t * p for t, p in zip(last, softmax2(0.0, 3.0), strict=True)))
    ) / 2
    assert out.logs["elr"].item() == pytest.approx(reg, rel=1e-6)


def test_elr_resumed_after_epoch_one_matches_an_uninterrupted_run(tiny_run_config, tmp_path):
    small = {"num_train": 64, "num_test": 16, "size": 16}
    cfg = tiny_run_config(
        method="elr", noise=30, epochs=2, batch_size=16, image_size=16, dataset_options=small
    )
    ckpt = tmp_path / "ckpt.pt"
    full_state, resumed_state = kill_and_resume(cfg, ckpt, after=1)
    saved = torch.load(ckpt, weights_only=True)["method"]["targets"]
    assert saved.shape[1] == 7 and saved.sum() > 0  # the targets travel with the checkpoint
    assert_same_history(full_state, resumed_state)
    assert all("elr" in e["train"] for e in resumed_state.history)


# -- CE + auxiliary tasks ----------------------------------------------------------------------


def test_ce_aux_has_exactly_mtacs_auxiliary_options_and_nothing_else():
    ce_aux, mtac = METHODS.get("ce_aux"), METHODS.get("mtac")
    options = declared_options(ce_aux)
    assert options == {k: declared_options(mtac)[k] for k in options}
    assert set(options) == {"au_weight", "au_source", "graph_threshold", "va_weight"}
    assert ce_aux.checks == {k: mtac.checks[k] for k in options}
    assert not ce_aux.relabels and ce_aux.weight_name is None


def _aux_batch(features):
    va = torch.tensor([[0.5, -0.2], [float("nan"), float("nan")], [0.1, 0.9]])
    au = torch.tensor([[1.0, 0.0, float("nan")], [0.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    return batch([0, 2, 1], features, va=va, au=au)


def test_ce_aux_without_its_tasks_is_ce():
    info = info_for(num_classes=3, num_features=5, va=True, aus=3, n=10)
    torch.manual_seed(0)
    ce = create_method("ce", backbone=nn.Identity(), num_features=5, info=info)
    torch.manual_seed(0)
    off = dict(au_weight=0.0, va_weight=0.0)
    ce_aux = create_method("ce_aux", backbone=nn.Identity(), num_features=5, info=info, **off)
    assert ce_aux.au_head is None and ce_aux.va_head is None
    ce_state, aux_state = ce.state_dict(), ce_aux.state_dict()
    assert ce_state.keys() == aux_state.keys()
    assert all(torch.equal(ce_state[k], aux_state[k]) for k in ce_state)
    feats = torch.randn(3, 5, generator=torch.Generator().manual_seed(1))
    a, b = ce.loss(_aux_batch(feats), None), ce_aux.loss(_aux_batch(feats), None)
    assert torch.equal(a.loss, b.loss) and torch.equal(a.logits, b.logits)
    assert a.weights is None and b.weights is None
    a.loss.backward()
    b.loss.backward()
    assert torch.equal(ce.classifier.weight.grad, ce_aux.classifier.weight.grad)


@pytest.mark.parametrize("au_source", ["labels", "prior"])
def test_ce_aux_auxiliary_terms_equal_mtacs_on_the_same_heads(au_source):
    info = info_for(num_classes=3, num_features=5, va=True, aus=3, n=10)
    mtac = create_method(
        "mtac", backbone=nn.Identity(), num_features=5, info=info, au_source=au_source
    )
    ce_aux = create_method(
        "ce_aux", backbone=nn.Identity(), num_features=5, info=info, au_source=au_source
    )
    for head in ("classifier", "au_head", "va_head"):  # the same heads
        getattr(ce_aux, head).load_state_dict(getattr(mtac, head).state_dict())
    feats = torch.randn(3, 5, generator=torch.Generator().manual_seed(2))
    ours = ce_aux.loss(_aux_batch(feats), LabelStore(info.train_labels))
    theirs = mtac.loss(_aux_batch(feats), LabelStore(info.train_labels))
    assert torch.equal(ours.logs["au"], theirs.logs["au"])
    assert torch.equal(ours.logs["va"], theirs.logs["va"])
    ce = F.cross_entropy(ce_aux.classifier(feats), torch.tensor([0, 2, 1]))
    assert ours.loss.item() == pytest.approx(
        ce.item() + 0.5 * ours.logs["au"].item() + 0.5 * ours.logs["va"].item(), rel=1e-6
    )


def test_ce_aux_va_loss_by_hand():
    info = info_for(num_classes=3, num_features=3, va=True, n=6)
    m = method_on_logits("ce_aux", info=info, au_weight=0.0, va_weight=0.5)
    with torch.no_grad():
        m.va_head.weight.copy_(torch.tensor([[0.5, 0.0, 0.0], [0.0, 0.0, -1.0]]))
        m.va_head.bias.zero_()
    feats = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 2.0]])
    va = torch.tensor([[0.5, float("nan")], [0.0, -0.5]])
    out = m.loss(batch([0, 2], feats, va=va), None)
    # Known entries: tanh(0.5) vs 0.5, tanh(0) vs 0, tanh(-2) vs -0.5; the NaN is masked.
    va_hand = ((math.tanh(0.5) - 0.5) ** 2 + 0.0 + (math.tanh(-2.0) + 0.5) ** 2) / 3
    sm = [math.exp(1) / (math.exp(1) + 2), math.exp(2) / (math.exp(2) + 2)]
    ce_hand = -(math.log(sm[0]) + math.log(sm[1])) / 2
    assert out.logs["va"].item() == pytest.approx(va_hand, rel=1e-6)
    assert out.loss.item() == pytest.approx(ce_hand + 0.5 * va_hand, rel=1e-6)


def test_ce_aux_refuses_au_labels_the_data_lacks():
    from fer_bench.errors import FerBenchError

    with pytest.raises(FerBenchError, match="ce_aux au_source=labels"):
        method_on_logits("ce_aux", au_source="labels")
