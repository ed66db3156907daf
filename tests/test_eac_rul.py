"""EAC and RUL, pinned on tiny hand-built maps and batches, and their exact resume."""

import math

import pytest
import timm
import torch
import torch.nn.functional as F
from fer_bench.methods.eac import class_activation_maps, flip_consistency
from fer_bench.methods.rul import addup_loss, branch_value, embedding_head, relative_mix
from methods_helpers import info_for
from resume_helpers import assert_same_history, kill_and_resume
from torch import nn

from fer_bench.method import Batch, LabelStore
from fer_bench.registry import create_method

BN = 1 / math.sqrt(1 + 2e-5)  # an eval-mode batch norm at its initial statistics (RUL's eps)


class MapIdentity(nn.Module):
    """A 'backbone' whose feature maps are its input and whose pooled features their mean."""

    def forward_features(self, x):
        return x

    def forward_head(self, x, pre_logits=False):
        return x.mean((2, 3))

    def forward(self, x):
        return x.mean((2, 3))


def _close(tensor, expected):
    return torch.allclose(tensor, torch.tensor(expected), atol=1e-6)


def _batch(images, labels, view2=None):
    labels = torch.tensor(labels)
    return Batch(
        images=images,
        labels=labels,
        given_labels=labels.clone(),
        index=torch.arange(len(labels)),
        epoch=0,
        another_view=None if view2 is None else (lambda: view2),
    )


# -- EAC ---------------------------------------------------------------------------------------

MAP = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])  # (N=1, C=1, H=2, W=2)
WEIGHT = torch.tensor([[1.0], [-2.0]])  # 2 classes x 1 channel


def test_cams_are_the_classifier_weights_times_the_maps_for_every_class():
    cams = class_activation_maps(MAP, WEIGHT)
    assert cams.shape == (1, 2, 2, 2)
    assert cams[0, 0].tolist() == [[1.0, 2.0], [3.0, 4.0]]
    assert cams[0, 1].tolist() == [[-2.0, -4.0], [-6.0, -8.0]]


def test_flip_consistency_flips_the_mirrors_maps_back_before_comparing():
    cams = class_activation_maps(MAP, WEIGHT)
    # The mirror image's maps are the mirrored maps: once flipped back they agree exactly.
    mirror = class_activation_maps(MAP.flip(-1), WEIGHT)
    assert flip_consistency(cams, mirror).item() == 0.0
    # Compared without undoing the flip they would not: m - flip(m) = [[-1, 1], [-1, 1]],
    # squared 1 per pixel for class 0 (weight 1) and 4 for class 1 (weight -2): mean 20 / 8.
    assert flip_consistency(cams, cams).item() == pytest.approx(2.5)


def _eac(**options):
    info = info_for(num_classes=2, num_features=1, n=4)
    m = create_method("eac", backbone=MapIdentity(), num_features=1, info=info, **options)
    with torch.no_grad():
        m.classifier.weight.copy_(WEIGHT)
        m.classifier.bias.zero_()
    return m


def _ce_label0(logits):
    return math.log(sum(math.exp(v) for v in logits)) - logits[0]


def test_eac_loss_is_ce_plus_lambda_times_cam_consistency_on_a_hand_built_map():
    # The second view (flip_view=independent) is the same face erased at its top-left pixel:
    # after the mirror and back, the CAMs differ there only, by weight * 1: (1 + 4) / 8.
    erased = torch.tensor([[[[0.0, 2.0], [3.0, 4.0]]]])
    out = _eac(flip_view="independent").loss(_batch(MAP, [0], view2=erased), None)
    logits = [1.0 * 2.5, -2.0 * 2.5]  # weight x mean of the map
    assert out.logits[0].tolist() == pytest.approx(logits)
    assert out.logs["consistency"].item() == pytest.approx(5 / 8)
    assert out.logs["ce"].item() == pytest.approx(_ce_label0(logits), abs=1e-6)
    assert out.loss.item() == pytest.approx(_ce_label0(logits) + 5.0 * 5 / 8, abs=1e-6)
    # The paper's view is the mirror of the erased image itself: consistent by construction.
    out = _eac(lam=3.0).loss(_batch(MAP, [0]), None)
    assert out.logs["consistency"].item() == 0.0
    assert out.loss.item() == pytest.approx(_ce_label0(logits), abs=1e-6)


def test_eac_consistency_trains_the_backbone_not_the_classifier_by_default():
    erased = torch.tensor([[[[0.0, 2.0], [3.0, 4.0]]]])

    def classifier_grad(**options):
        m = _eac(flip_view="independent", **options)
        m.loss(_batch(MAP, [0], view2=erased), None).loss.backward()
        return m.classifier.weight.grad.clone()

    m = _eac()
    F.cross_entropy(m.classifier(MAP.mean((2, 3))), torch.tensor([0])).backward()
    ce_only = m.classifier.weight.grad.clone()
    assert torch.allclose(classifier_grad(), ce_only)  # official: weights' .data in the CAMs
    # With gradient: d/dW_k of mean_k,pix (W_k d)^2 = 2 W_k sum(d^2) / 8 = W_k / 4 (d = 1 once).
    expected = ce_only + 5.0 * WEIGHT / 4
    assert torch.allclose(classifier_grad(detach_cam_weights=False), expected)


def test_eac_logits_come_from_the_pooled_maps_of_a_timm_resnet():
    torch.manual_seed(0)
    backbone = timm.create_model("test_resnet", pretrained=False, num_classes=0)
    m = create_method("eac", backbone=backbone, num_features=96, info=info_for(7, 96)).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        maps, logits = m.maps_and_logits(x)
        assert torch.allclose(logits, m.predict(x), atol=1e-6)
        assert torch.allclose(logits, m.classifier(maps.mean((2, 3))), atol=1e-6)


# -- RUL ---------------------------------------------------------------------------------------


def test_branch_value_is_the_mean_of_exp():
    s = torch.tensor([[0.0, math.log(3.0)], [math.log(2.0), math.log(4.0)]])
    assert branch_value(s).tolist() == pytest.approx([2.0, 3.0])


def test_relative_mix_weights_each_sample_by_its_share_of_the_pair():
    e = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    a = torch.tensor([1.0, 3.0])
    mixed, share = relative_mix(e, a, torch.tensor([1, 0]))
    assert share.tolist() == pytest.approx([1 / 4, 3 / 4])  # a_i / (a_i + a_j)
    # 1/4 [1, 0] + 3/4 [0, 2], and for sample 2: 3/4 [0, 2] + 1/4 [1, 0]: the same point.
    assert _close(mixed, [[0.25, 1.5], [0.25, 1.5]])
    mixed, share = relative_mix(e, a, torch.tensor([0, 1]))  # a sample paired with itself
    assert share.tolist() == [0.5, 0.5] and mixed.tolist() == e.tolist()


def _ce(logits, label):
    return math.log(sum(math.exp(v) for v in logits)) - logits[label]


def test_addup_loss_adds_both_labels_with_equal_weights_by_hand():
    logits = torch.tensor([[0.25, 1.5], [0.25, 1.5]])
    labels, partner_labels = torch.tensor([0, 1]), torch.tensor([1, 0])
    share = torch.tensor([0.25, 0.75])
    ce0, ce1 = _ce([0.25, 1.5], 0), _ce([0.25, 1.5], 1)
    equal = addup_loss(logits, labels, partner_labels, share, "equal")
    assert equal.item() == pytest.approx(0.5 * ce0 + 0.5 * ce1)
    # mixup's weighting: sample 1 takes 1/4 CE(0) + 3/4 CE(1); sample 2 3/4 CE(1) + 1/4 CE(0).
    mixing = addup_loss(logits, labels, partner_labels, share, "mixing")
    assert mixing.item() == pytest.approx(0.25 * ce0 + 0.75 * ce1)


def _rul(**options):
    info = info_for(num_classes=2, num_features=2, n=4)
    m = create_method(
        "rul",
        backbone=nn.Identity(),
        num_features=2,
        info=info,
        head_input="pooled",
        embedding_dim=2,
        dropout=0.0,
        **options,
    )
    with torch.no_grad():
        m.embedding[2].weight.copy_(torch.eye(2))
        m.embedding[2].bias.zero_()
        m.log_var[2].weight.copy_(torch.tensor([[0.0, math.log(3) / 2], [0.0, math.log(3) / 2]]))
        m.log_var[2].bias.zero_()
        m.classifier.weight.copy_(2 * torch.eye(2))
        m.classifier.bias.zero_()
    return m.eval()  # batch norm at its initial running statistics: x / sqrt(1 + eps)


def test_rul_loss_on_two_samples_by_hand(monkeypatch):
    m = _rul()
    monkeypatch.setattr(m, "partners", lambda n, device: torch.tensor([1, 0]))
    x = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    out = m.loss(_batch(x, [0, 1]), LabelStore(torch.tensor([0, 1])))
    c = BN * BN  # two batch norms on the way to the embedding and to s
    e1, e2 = [c, 0.0], [0.0, 2 * c]
    a1, a2 = 1.0, math.exp(math.log(3) * c)  # s_1 = 0, s_2 = [ln 3, ln 3] * c
    assert out.weights.tolist() == pytest.approx([a1, a2])
    assert _close(out.logits, [[2 * v for v in e1], [2 * v for v in e2]])
    lam = a1 / (a1 + a2)
    mixed = [lam * p + (1 - lam) * q for p, q in zip(e1, e2, strict=True)]  # same for both
    logits = [2 * v for v in mixed]
    assert out.loss.item() == pytest.approx(0.5 * _ce(logits, 0) + 0.5 * _ce(logits, 1))


def test_rul_predicts_with_the_classifier_on_the_unmixed_embedding():
    m = _rul()
    x = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    assert _close(m.predict(x), [[2 * BN * BN, 0.0], [0.0, 4 * BN * BN]])


def test_rul_map_head_has_the_official_shape_and_pools_only_other_map_sizes():
    head = embedding_head(3, 4, 0.0, "map", 7)
    assert head[4].in_features == 3 * 7 * 7
    x = torch.randn(2, 3, 7, 7)
    assert torch.equal(head[0](x), x)  # the official 7 x 7 map passes unchanged
    assert head(torch.randn(2, 3, 2, 2)).shape == (2, 4)


# -- resume ------------------------------------------------------------------------------------


@pytest.mark.parametrize("method, options", [("eac", {"flip_view": "independent"}), ("rul", {})])
def test_resume_after_epoch_one_matches_an_uninterrupted_run(
    method, options, tiny_run_config, tmp_path
):
    cfg = tiny_run_config(
        method=method,
        noise=30,
        epochs=2,
        batch_size=16,
        image_size=16,
        dataset_options={"num_train": 32, "num_test": 16, "size": 16},
        method_options=options,
    )
    assert_same_history(*kill_and_resume(cfg, tmp_path / "ckpt.pt", after=1))
