"""``LabelStore.relabel`` with an index repeated in one batch (balanced sampling draws with
replacement): the last occurrence whose mask is set wins, every time, and no relabel is lost."""

import torch

from fer_bench.method import LabelStore


def _reference(current: list[int], index, new, mask) -> list[int]:
    out = list(current)
    for i, n, m in zip(index.tolist(), new.tolist(), mask.tolist(), strict=True):
        if m:
            out[i] = n  # later occurrences overwrite earlier ones
    return out


def test_a_repeated_index_takes_its_last_masked_relabel():
    store = LabelStore(torch.zeros(5, dtype=torch.long))
    index = torch.tensor([1, 1, 1, 2, 2, 3])
    new = torch.tensor([4, 5, 6, 1, 2, 3])
    mask = torch.tensor([True, True, False, False, False, True])
    store.relabel(index, new, mask)
    # Sample 1: occurrences 0 and 1 relabel, occurrence 2 does not: the relabel to 5 stands.
    assert store.current.tolist() == [0, 5, 0, 3, 0]
    assert store.given.tolist() == [0] * 5


def test_relabel_matches_sequential_semantics_on_random_batches():
    gen = torch.Generator().manual_seed(0)
    for _ in range(200):
        n = int(torch.randint(2, 12, (1,), generator=gen))
        current = torch.randint(0, 7, (n,), generator=gen)
        store = LabelStore(current)
        index = torch.randint(0, n, (16,), generator=gen)  # with replacement: repeats
        new = torch.randint(0, 7, (16,), generator=gen)
        mask = torch.rand(16, generator=gen) < 0.5
        expected = _reference(current.tolist(), index, new, mask)
        store.relabel(index, new, mask)
        assert store.current.tolist() == expected
