import torch

from fer_bench.data import RAFDB_CLASSES
from fer_bench.registry import create_dataset


def test_deterministic_by_seed_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("FER_BENCH_CACHE", str(tmp_path))
    a = create_dataset("synthetic", num_train=60, num_test=20, size=24, seed=3)
    assert list(tmp_path.glob("synthetic/*.pt"))
    b = create_dataset("synthetic", num_train=60, num_test=20, size=24, seed=3, cache=False)
    assert torch.equal(a.train.images, b.train.images)
    assert torch.equal(a.train.labels, b.train.labels)
    c = create_dataset("synthetic", num_train=60, num_test=20, size=24, seed=4, cache=False)
    assert not torch.equal(a.train.images, c.train.images)


def test_shape_classes_and_auxiliary_targets(tiny_synthetic):
    d = tiny_synthetic
    assert d.class_names == RAFDB_CLASSES
    assert d.train.images.dtype == torch.uint8 and d.train.images.shape[1:] == (3, 32, 32)
    assert set(d.train.labels.tolist()) == set(range(7))
    assert d.train.soft_labels.sum(1).allclose(torch.ones(len(d.train)))
    assert (d.train.soft_labels.argmax(1) == d.train.labels).all()  # blends stay dominated
    blended = (d.train.soft_labels.max(1).values < 1).float().mean()
    assert 0.05 < blended < 0.3
    assert d.train.valence_arousal.abs().max() <= 1
    assert d.train.action_units.shape[1] == len(d.au_names)
    # Train and test are different images.
    assert not torch.equal(d.train.images[:10], d.test.images[:10])


def test_action_units_follow_the_rendered_expression(tiny_synthetic):
    d = tiny_synthetic
    au = d.train.action_units
    labels = d.train.labels

    def rate(class_name, au_name):
        members = labels == d.class_names.index(class_name)
        return au[members, d.au_names.index(au_name)].mean().item()

    assert rate("happiness", "AU12") > 0.7 and rate("sadness", "AU12") < 0.2
    assert rate("surprise", "AU26") > 0.6 and rate("neutral", "AU26") < 0.2
    assert rate("anger", "AU4") > 0.6 and rate("happiness", "AU4") < 0.2
