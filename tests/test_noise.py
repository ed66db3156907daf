import pytest
import torch

from fer_bench.data import RAFDB_CLASSES
from fer_bench.errors import FerBenchError
from fer_bench.noise import DEFAULT_ASYMMETRIC_MAP, inject_noise, read_noise_file


def _labels(counts):
    return torch.cat([torch.full((n,), c) for c, n in enumerate(counts)])


COUNTS = [355, 77, 201, 1000, 410, 162, 640]  # imbalanced, like RAF-DB
LABELS = _labels(COUNTS)


def noisy(rate, kind="symmetric", seed=0, **kw):
    return inject_noise(
        LABELS, RAFDB_CLASSES, dataset="rafdb", noise_type=kind, rate_percent=rate, seed=seed, **kw
    )


@pytest.mark.parametrize("rate", [10, 20, 30])
def test_symmetric_flips_exact_per_class_counts_to_other_classes(rate):
    out = noisy(rate)
    for c, n in enumerate(COUNTS):
        members = LABELS == c
        assert int(out.flipped[members].sum()) == (rate * n * 2 + 100) // 200  # half up
    assert torch.equal(out.clean, LABELS)
    assert torch.equal(out.flipped, out.labels != LABELS)
    assert not (out.labels[out.flipped] == LABELS[out.flipped]).any()


def test_symmetric_targets_are_spread_over_all_other_classes():
    out = inject_noise(
        _labels([7000, 7000]),
        ["a", "b"],
        dataset="x",
        noise_type="symmetric",
        rate_percent=30,
        seed=0,
    )
    assert int(out.flipped.sum()) == 4200
    big = inject_noise(
        torch.zeros(60000, dtype=torch.long),
        RAFDB_CLASSES,
        dataset="x",
        noise_type="symmetric",
        rate_percent=60,
        seed=1,
    )
    targets = torch.bincount(big.labels[big.flipped], minlength=7)
    assert targets[0] == 0
    share = targets[1:].float() / targets[1:].sum()
    assert torch.allclose(share, torch.full((6,), 1 / 6), atol=0.01)


def test_flip_counts_round_halves_up_exactly():
    from fer_bench.noise import flip_count

    assert flip_count(30, 355) == 107  # 106.5: Python's round() would give 106
    assert flip_count(10, 425) == 43  # 42.5
    assert flip_count(30, 410) == 123  # 0.3 * 410 = 123.00000000000001 in floats
    assert flip_count(33.3, 1000) == 333 and flip_count(0, 999) == 0


def test_same_key_same_labels_different_seed_different_labels():
    assert torch.equal(noisy(20, seed=3).labels, noisy(20, seed=3).labels)
    assert not torch.equal(noisy(20, seed=3).labels, noisy(20, seed=4).labels)
    # The noisy set depends on the dataset name too, not only on the seed.
    other = inject_noise(
        LABELS, RAFDB_CLASSES, dataset="ferplus", noise_type="symmetric", rate_percent=20, seed=3
    )
    assert not torch.equal(other.labels, noisy(20, seed=3).labels)


def test_zero_noise_is_identity_and_input_is_not_modified():
    before = LABELS.clone()
    out = noisy(0)
    assert torch.equal(out.labels, LABELS) and not out.flipped.any()
    noisy(30)
    assert torch.equal(LABELS, before)


def test_asymmetric_follows_the_map_with_exact_counts():
    out = noisy(20, kind="asymmetric")
    for c, n in enumerate(COUNTS):
        members = LABELS == c
        flipped = out.labels[members & out.flipped]
        assert len(flipped) == (20 * n * 2 + 100) // 200
        target = RAFDB_CLASSES.index(DEFAULT_ASYMMETRIC_MAP[RAFDB_CLASSES[c]])
        assert (flipped == target).all()


@pytest.mark.parametrize("rate", [-1, 100, 150])
def test_impossible_rates_are_errors(rate):
    with pytest.raises(FerBenchError, match="percentage"):
        noisy(rate)


def test_noise_file_in_rafdb_list_format(tmp_path):
    names = ["train_00001.jpg", "train_00002.jpg", "train_00003.jpg"]
    f = tmp_path / "noise.txt"
    f.write_text("train_00002.jpg 1\ntrain_00001.jpg 7\n\ntrain_00003.jpg 4\n")
    labels = torch.tensor([6, 0, 0])
    out = inject_noise(
        labels,
        RAFDB_CLASSES,
        dataset="rafdb",
        noise_type="file",
        rate_percent=0,
        seed=0,
        names=names,
        noise_file=str(f),
    )
    assert out.labels.tolist() == [6, 0, 3]
    assert out.flipped.tolist() == [False, False, True]


def test_scn_published_noise_files_full_paths_and_zero_based(tmp_path):
    """SCN's 0.1noise_train.txt: absolute paths to *_aligned.jpg and labels 0..6."""
    f = tmp_path / "0.1noise_train.txt"
    f.write_text(
        "/home/x/aligned/train_00001_aligned.jpg 4\n/home/x/aligned/train_00002_aligned.jpg 0\n"
    )
    names = ["train_00001.jpg", "train_00002.jpg"]
    assert read_noise_file(f, names, 7, label_base=0).tolist() == [4, 0]
    with pytest.raises(FerBenchError, match="label 0 outside 1..7"):
        read_noise_file(f, names, 7)  # read as 1-based, the 0 gives it away


def test_noise_file_errors_name_file_and_line(tmp_path):
    f = tmp_path / "bad.txt"
    f.write_text("train_00001.jpg 1\ntrain_00002.jpg 9\n")
    with pytest.raises(FerBenchError, match=r"bad.txt:2: label 9 outside 1..7"):
        read_noise_file(f, ["train_00001.jpg", "train_00002.jpg"], 7)
    f.write_text("train_00001.jpg 1\n")
    with pytest.raises(FerBenchError, match="no label for 1 training image"):
        read_noise_file(f, ["train_00001.jpg", "train_00002.jpg"], 7)


def test_real_noise_needs_a_dataset_that_publishes_it():
    with pytest.raises(FerBenchError, match="publishes no real noisy labels"):
        noisy(0, kind="real")
    real = LABELS.roll(1)
    out = noisy(0, kind="real", real_noisy_labels=real)
    assert torch.equal(out.labels, real) and torch.equal(out.clean, LABELS)


def test_test_split_is_never_noised(tiny_run_config):
    from fer_bench.registry import create_dataset
    from fer_bench.runner import prepare_data, resolve_config

    cfg = resolve_config(tiny_run_config(noise=30))
    data = create_dataset("synthetic", **cfg.dataset_options)
    test_before = data.test.labels.clone()
    train_data, noisy_labels, info = prepare_data(cfg, data)
    assert torch.equal(train_data.test.labels, test_before)
    assert noisy_labels.actual_rate == pytest.approx(0.3, abs=0.01)
    # The held-out validation split carries noisy labels, never the clean ones.
    assert info["num_train"] + info["num_val"] == len(data.train)


# -- SCN's bernoulli generator and annotator votes ----------------------------------------------


def test_bernoulli_flips_each_label_with_probability_rate_to_another_class():
    labels = _labels([20000, 20000, 20000])
    out = inject_noise(
        labels, ["a", "b", "c"], dataset="x", noise_type="bernoulli", rate_percent=30, seed=0
    )
    assert not (out.labels[out.flipped] == labels[out.flipped]).any()
    # 60k independent Bernoulli(0.3) draws: the realised rate is 0.3 within 4 standard errors.
    assert abs(out.actual_rate - 0.3) < 4 * (0.3 * 0.7 / 60000) ** 0.5
    # unlike `symmetric`, the per-class counts are not fixed: they scatter
    per_class = [int(out.flipped[labels == c].sum()) for c in range(3)]
    assert len(set(per_class)) > 1 and per_class != [6000] * 3
    targets = out.labels[out.flipped & (labels == 0)]
    assert abs(float((targets == 1).float().mean()) - 0.5) < 0.03  # uniform over the others


def test_bernoulli_is_seeded_and_differs_from_symmetric():
    a, b = noisy(20, "bernoulli"), noisy(20, "bernoulli")
    assert torch.equal(a.labels, b.labels)
    assert not torch.equal(a.labels, noisy(20, "bernoulli", seed=1).labels)
    assert not torch.equal(a.flipped, noisy(20).flipped)


VOTES = torch.tensor([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.0, 0.2, 0.8]])


def test_annotator_labels_follow_the_vote_shares():
    clean = torch.tensor([0, 0, 2])
    many = clean.repeat(20000)
    votes = VOTES.repeat(20000, 1)
    out = inject_noise(
        many,
        ["a", "b", "c"],
        dataset="x",
        noise_type="annotator",
        rate_percent=0,
        seed=3,
        votes=votes,
    )
    first, second, third = (out.labels[i::3] for i in range(3))
    assert (first == 0).all()  # a unanimous face keeps its label
    assert abs(float((second == 1).float().mean()) - 0.5) < 0.02
    assert abs(float((third == 1).float().mean()) - 0.2) < 0.02
    assert torch.equal(out.clean, many)  # the majority stays the clean label for diagnostics
    # expected flipped share: (0 + 0.5 + 0.2) / 3
    assert abs(out.actual_rate - 0.7 / 3) < 0.01


def test_annotator_needs_votes_and_takes_no_rate():
    kw = dict(dataset="x", noise_type="annotator", seed=0)
    with pytest.raises(FerBenchError, match="no annotator votes"):
        inject_noise(torch.tensor([0, 1]), ["a", "b"], rate_percent=0, **kw)
    with pytest.raises(FerBenchError, match="takes no --noise rate"):
        inject_noise(torch.tensor([0, 1]), ["a", "b"], rate_percent=10, votes=VOTES[:2, :2], **kw)
