"""The methods' math, pinned on tiny hand-computed batches."""

import math

import pytest
import torch
import torch.nn.functional as F
from fer_bench.methods.mtac import cooccurrence_graph, prior_au_matrix
from fer_bench.methods.scn import relabel_candidates
from methods_helpers import info_for
from torch import nn

from fer_bench.data import RAFDB_CLASSES
from fer_bench.errors import FerBenchError
from fer_bench.losses import class_balanced_weights, masked_bce, masked_mse, rank_regularization
from fer_bench.method import Batch, LabelStore
from fer_bench.registry import create_method


def batch(labels, epoch=0, features=None, va=None, au=None):
    labels = torch.tensor(labels)
    return Batch(
        images=features,
        labels=labels,
        given_labels=labels.clone(),
        index=torch.arange(len(labels)),
        epoch=epoch,
        valence_arousal=va,
        action_units=au,
    )


# -- SCN ---------------------------------------------------------------------------------------


def test_rank_regularization_value_and_zero_region():
    w = torch.tensor([0.5, 0.45, 0.5, 0.45])
    loss, low = rank_regularization(w, beta=0.5, margin=0.15)
    assert loss.item() == pytest.approx(0.15 - (0.5 - 0.45))
    assert low.tolist() == [False, True, False, True]
    spread = torch.tensor([0.9, 0.8, 0.7, 0.1])
    loss, _ = rank_regularization(spread, beta=0.5, margin=0.15)
    assert loss.item() == 0.0  # mean gap 0.45 > margin


def test_rank_regularization_high_group_is_beta_share():
    w = torch.linspace(0.1, 1.0, 10)
    _, low = rank_regularization(w, beta=0.7, margin=0.15)
    assert low.sum() == 3 and low[:3].all()  # the three smallest weights


def test_relabel_threshold_is_strict_margin_on_probabilities():
    # p = softmax: choose logits giving p_max - p_given of about 0.25 and 0.15.
    def logits_for(gap):
        p_max = (1 + gap) / 2
        return torch.log(torch.tensor([[p_max, 1 - p_max]]))

    move, proposal = relabel_candidates(logits_for(0.25), torch.tensor([1]), 0.2)
    assert move.tolist() == [True] and proposal.tolist() == [0]
    move, _ = relabel_candidates(logits_for(0.15), torch.tensor([1]), 0.2)
    assert move.tolist() == [False]
    move, _ = relabel_candidates(logits_for(0.25), torch.tensor([0]), 0.2)
    assert move.tolist() == [False]  # already the argmax


def _scn(**options):
    info = info_for(num_classes=2, num_features=2)
    m = create_method("scn", backbone=nn.Identity(), num_features=2, info=info, **options)
    with torch.no_grad():
        m.classifier.weight.copy_(torch.tensor([[2.0, 0.0], [0.0, 2.0]]))
        m.classifier.bias.zero_()
        m.importance[0].weight.copy_(torch.tensor([[1.0, 1.0]]))
        m.importance[0].bias.zero_()
    return m


def test_scn_loss_is_weighted_cross_entropy_plus_rank_regularization():
    m = _scn(beta=0.5, rr_margin=0.15, relabel=False)
    feats = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [-1.0, -1.0]])
    b = batch([0, 1, 1, 0], features=feats)
    out = m.loss(b, LabelStore(b.labels))
    alpha = torch.sigmoid(feats.sum(1))
    weighted = alpha[:, None] * (feats @ torch.tensor([[2.0, 0.0], [0.0, 2.0]]).T)
    wce = F.cross_entropy(weighted, b.labels)
    a = sorted(alpha.tolist(), reverse=True)
    rr = max(0.0, 0.15 - ((a[0] + a[1]) / 2 - (a[2] + a[3]) / 2))
    assert out.loss.item() == pytest.approx(wce.item() + rr, rel=1e-6)
    assert torch.allclose(out.weights, alpha)
    # The logits reported for evaluation are the unweighted ones; the argmax is the same.
    assert torch.equal(out.logits.argmax(1), weighted.argmax(1))


def test_scn_relabel_scope_and_start_epoch():
    # Sample 0 has high importance and is contradicted; sample 3 low importance, contradicted.
    feats = torch.tensor([[3.0, 0.0], [0.0, 2.0], [0.0, 1.5], [0.2, -1.0]])
    labels = [1, 1, 1, 1]
    for scope, expected in (("low", [1, 1, 1, 0]), ("all", [0, 1, 1, 0])):
        m = _scn(beta=0.5, relabel_scope=scope, relabel_epoch=3)
        b = batch(labels, epoch=1, features=feats)  # epoch 2 (1-based): too early
        store = LabelStore(b.labels)
        m.loss(b, store)
        assert store.current.tolist() == labels
        b = batch(labels, epoch=2, features=feats)  # epoch 3: relabeling starts
        m.loss(b, store)
        assert store.current.tolist() == expected, scope
        assert store.given.tolist() == labels


def test_relabels_persist_in_the_label_store():
    store = LabelStore(torch.tensor([0, 1, 2, 3]))
    store.relabel(torch.tensor([1, 3]), torch.tensor([5, 6]), torch.tensor([True, False]))
    assert store.current.tolist() == [0, 5, 2, 3]
    store.relabel(torch.tensor([1]), torch.tensor([0]), torch.tensor([False]))
    assert store.current.tolist() == [0, 5, 2, 3]  # a later non-relabel keeps the new label
    assert store[torch.tensor([1])].tolist() == [5]


def test_scn_rejects_unknown_scope():
    with pytest.raises(FerBenchError, match="relabel_scope"):
        _scn(relabel_scope="some")


# -- MTAC --------------------------------------------------------------------------------------


def test_class_balanced_weights_equalise_classes_in_batch():
    w = class_balanced_weights(torch.tensor([0, 0, 0, 1]), 3)
    assert w.tolist() == pytest.approx([1 / 6, 1 / 6, 1 / 6, 1 / 2])


def test_masked_losses_ignore_unknown_targets():
    logits = torch.tensor([[0.3, 5.0], [-1.0, 2.0]])
    targets = torch.tensor([[1.0, float("nan")], [0.0, float("nan")]])
    expected = F.binary_cross_entropy_with_logits(logits[:, 0], targets[:, 0])
    assert masked_bce(logits, targets).item() == pytest.approx(expected.item())
    pred = torch.tensor([[0.5, 0.2]])
    assert masked_mse(pred, torch.tensor([[0.1, float("nan")]])).item() == pytest.approx(0.16)
    assert masked_mse(pred, torch.full((1, 2), float("nan"))).item() == 0.0


def test_cooccurrence_graph_is_conditional_probability_row_normalised():
    t = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    adj = cooccurrence_graph(t, threshold=0.3)
    # P(AU1 | AU0) = 1/2, P(AU0 | AU1) = 1, AU2 stands alone.
    assert adj[0].tolist() == pytest.approx([1 / 1.5, 0.5 / 1.5, 0.0])
    assert adj[1].tolist() == pytest.approx([0.5, 0.5, 0.0])
    assert adj[2].tolist() == pytest.approx([0.0, 0.0, 1.0])
    sparse = cooccurrence_graph(t, threshold=0.6)
    assert sparse[0, 1] == 0.0  # 1/2 is below the threshold


def test_emfacs_prior():
    prior = prior_au_matrix(RAFDB_CLASSES, [1, 2, 6, 12, 26])
    assert prior[RAFDB_CLASSES.index("happiness")].tolist() == [0, 0, 1, 1, 0]
    assert prior[RAFDB_CLASSES.index("surprise")].tolist() == [1, 1, 0, 0, 1]
    assert prior[RAFDB_CLASSES.index("neutral")].sum() == 0


def _mtac(info=None, **options):
    info = info or info_for(num_classes=3, num_features=4)
    return create_method("mtac", backbone=nn.Identity(), num_features=4, info=info, **options)


def test_mtac_prototype_relabeling_needs_similarity_margin_and_classifier_agreement():
    m = _mtac(relabel_epoch=1, relabel_margin=0.1, beta=0.5, au_weight=0.0)
    with torch.no_grad():
        m.prototypes.copy_(torch.eye(3, 4))
        m.prototype_seen.fill_(True)
        m.classifier.weight.copy_(torch.eye(3, 4) * 5)
        m.classifier.bias.zero_()
    feats = torch.tensor([[0.0, 1.0, 0.0, 0.0], [0.3, 0.35, 0.0, 1.0]])
    b = batch([0, 0], epoch=0, features=feats)
    store = LabelStore(b.labels)
    uncertain = torch.tensor([True, True])
    m._relabel(b, feats, m.classifier(feats), uncertain, store)
    assert store.current.tolist() == [1, 0]  # sample 1 is not clearly closer to class 1
    # The classifier must agree: with it pointing at class 2, nothing moves.
    store = LabelStore(b.labels)
    m._relabel(b, feats, torch.tensor([[0.0, 0.0, 9.0], [0.0, 0.0, 9.0]]), uncertain, store)
    assert store.current.tolist() == [0, 0]
    # Confident samples are never relabeled.
    store = LabelStore(b.labels)
    m._relabel(b, feats, m.classifier(feats), torch.tensor([False, False]), store)
    assert store.current.tolist() == [0, 0]


def test_mtac_auxiliary_tasks_switch_off_when_the_data_lacks_them():
    m = _mtac(info_for(num_classes=3, num_features=4, va=False))
    assert m.va_head is None and m.va_weight == 0
    with_va = _mtac(info_for(num_classes=3, num_features=4, va=True))
    assert with_va.va_head is not None
    # No AU labels: targets come from the EMFACS prior of the current label.
    assert not m.au_from_labels and m.au_head is not None
    with pytest.raises(FerBenchError, match="no AU labels"):
        _mtac(au_source="labels")


def test_mtac_loss_masks_unknown_va_and_au_and_reports_confidences():
    info = info_for(num_classes=3, num_features=4, va=True, aus=2)
    m = _mtac(info)
    feats = torch.randn(6, 4, generator=torch.Generator().manual_seed(0))
    nan = float("nan")
    va = torch.tensor([[0.1, 0.2], [nan, nan], [0.3, -0.1], [nan, nan], [0.0, 0.0], [nan, nan]])
    au = torch.tensor([[1.0, nan], [0.0, 1.0], [nan, nan], [1.0, 1.0], [0.0, 0.0], [1.0, 0.0]])
    b = batch([0, 1, 2, 0, 1, 2], features=feats, va=va, au=au)
    out = m.loss(b, LabelStore(b.labels))
    assert torch.isfinite(out.loss)
    assert out.weights.shape == (6,) and ((out.weights > 0) & (out.weights < 1)).all()
    assert set(out.logs) >= {"cls", "au", "va", "conf_reg"}
    out.loss.backward()
    assert m.va_head.weight.grad is not None and m.au_head.nodes.weight.grad is not None


def test_methods_are_precision_safe_bf16_matches_fp32():
    """The fast path (bf16 autocast, channels_last) and plain fp32 agree within bf16 tolerance."""
    from fer_bench.backbones import create_backbone

    torch.manual_seed(0)
    images = torch.randn(8, 3, 24, 24, generator=torch.Generator().manual_seed(1))
    labels = torch.arange(8) % 7
    for name in ("ce", "scn", "mtac"):
        torch.manual_seed(0)
        backbone, nf = create_backbone("test_resnet")
        info = info_for(num_classes=7, num_features=nf, va=True, aus=3)
        m = create_method(name, backbone=backbone, num_features=nf, info=info).eval()
        b = batch(
            labels.tolist(), epoch=0, features=images, va=torch.zeros(8, 2), au=torch.zeros(8, 3)
        )
        ref = m.loss(b, LabelStore(b.labels)).loss.item()
        fast_images = images.contiguous(memory_format=torch.channels_last)
        m_fast = m.to(memory_format=torch.channels_last)
        b.images = fast_images
        with torch.autocast("cpu", dtype=torch.bfloat16):
            fast = m_fast.loss(b, LabelStore(b.labels)).loss.item()
        assert math.isfinite(fast)
        assert fast == pytest.approx(ref, rel=3e-2, abs=1e-2), name


def test_sample_weights_stay_fp32_under_bf16_autocast():
    """bf16 would quantise weights near 0.9 to steps of 0.004 and tie the batch's ranking; the
    weight heads run in fp32, so under autocast they equal the fp32 head on the same features."""
    from fer_bench.backbones import create_backbone

    images = torch.randn(16, 3, 24, 24, generator=torch.Generator().manual_seed(1))
    for name, head in (("scn", "importance"), ("mtac", "confidence")):
        torch.manual_seed(0)
        backbone, nf = create_backbone("test_resnet")
        info = info_for(num_classes=7, num_features=nf)
        m = create_method(name, backbone=backbone, num_features=nf, info=info).eval()
        b = batch([i % 7 for i in range(16)], epoch=0, features=images)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = m.loss(b, LabelStore(b.labels))
            feats = m.features(images)
        assert feats.dtype == torch.bfloat16 and out.weights.dtype == torch.float32
        expected = getattr(m, head)(feats.float()).squeeze(1)
        assert torch.equal(out.weights, expected), name
        assert out.weights.unique().numel() == 16, name  # no bf16 ties
