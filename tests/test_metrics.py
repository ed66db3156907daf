import pytest
import torch

from fer_bench.metrics import classification_metrics, relabel_stats, roc_auc


def test_classification_metrics_by_hand():
    targets = torch.tensor([0, 0, 0, 1, 1, 2])
    preds = torch.tensor([0, 0, 1, 1, 2, 2])
    m = classification_metrics(targets, preds, 3)
    assert m["accuracy"] == pytest.approx(400 / 6)
    assert m["per_class_accuracy"] == pytest.approx([200 / 3, 50.0, 100.0])
    assert m["mean_class_accuracy"] == pytest.approx((200 / 3 + 50 + 100) / 3)
    # F1: class 0 p=1 r=2/3 -> 0.8; class 1 p=1/2 r=1/2 -> 0.5; class 2 p=1/2 r=1 -> 2/3
    assert m["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3 * 100)
    assert m["confusion"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]


def test_roc_auc_matches_pairwise_definition_with_ties():
    scores = torch.tensor([0.9, 0.8, 0.8, 0.3, 0.1])
    positive = torch.tensor([True, False, True, False, True])
    pairs = [(p, n) for p in scores[positive] for n in scores[~positive]]
    expected = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in pairs) / len(pairs)
    assert roc_auc(scores, positive) == pytest.approx(expected)
    assert roc_auc(scores, torch.ones(5, dtype=torch.bool)) is None


def test_relabel_stats_count_restored_and_corrupted():
    clean = torch.tensor([0, 1, 2, 3, 0])
    given = torch.tensor([1, 1, 2, 0, 0])  # samples 0 and 3 were flipped
    current = torch.tensor([0, 2, 2, 1, 0])  # 0 restored, 1 corrupted, 3 changed to another wrong
    s = relabel_stats(given, current, clean, 4)
    assert (s["changed"], s["restored"], s["corrupted"]) == (3, 1, 1)
    assert s["precision"] == pytest.approx(1 / 3)
    assert s["from_to"][1][0] == 1 and s["from_to"][1][2] == 1 and s["from_to"][0][1] == 1


def test_relabel_recall_is_restored_over_the_noisy_labels():
    clean = torch.tensor([0, 1, 2, 3, 0, 1])
    given = torch.tensor([1, 1, 2, 0, 2, 1])  # samples 0, 3 and 4 are noisy
    current = torch.tensor([0, 1, 2, 3, 2, 0])  # 0 and 3 restored, 5 corrupted, 4 left alone
    s = relabel_stats(given, current, clean, 4)
    assert (s["noisy"], s["restored"], s["changed"]) == (3, 2, 3)
    assert s["recall"] == pytest.approx(2 / 3) and s["precision"] == pytest.approx(2 / 3)
    assert relabel_stats(clean, clean, clean, 4)["recall"] is None  # nothing was noisy
