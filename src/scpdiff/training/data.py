"""Training batches from a :class:`~scpdiff.datasets.SegmentationDataset`, in a resumable order.

The order of samples is a pure function of ``(seed, micro-batch index, process)``: an infinite
stream of per-epoch permutations. A run resumed at step ``s`` therefore sees exactly the batches
an uninterrupted run sees from step ``s`` on, without replaying a data loader.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ..datasets.base import SegmentationDataset


class ImageMaskSamples(Dataset):
    """``{"pixel_values": float [3, H, W] in [-1, 1], "mask": int64 [H, W], "index": int64}`` (SD's pixel range).

    ``cache_bytes`` > 0 keeps each decoded image and mask (as uint8 / the reader's integer type) in
    memory once read, until that many bytes are held: a training run revisits every sample once per
    epoch, and decoding the files again costs the toy's training loop 13% of a VAE step on 2 cores.
    The tensors returned are built from the kept arrays exactly as from freshly read ones.
    """

    def __init__(self, dataset: SegmentationDataset, cache_bytes: int = 0):
        self.dataset = dataset
        self.cache_bytes = int(cache_bytes)
        self._kept: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._kept_bytes = 0

    def __len__(self) -> int:
        return len(self.dataset)

    def _decoded(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        kept = self._kept.get(index)
        if kept is not None:
            return kept
        image, mask, _ = self.dataset[index]
        pixels, labels = np.array(image, dtype=np.uint8), np.array(mask)
        size = pixels.nbytes + labels.nbytes
        if self._kept_bytes + size <= self.cache_bytes:
            self._kept[index] = (pixels, labels)
            self._kept_bytes += size
        return pixels, labels

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        image, mask = self._decoded(index)
        # from_numpy shares memory: the float conversion and the int64 copy keep the kept arrays safe
        pixels = torch.from_numpy(image).permute(2, 0, 1).float() / 127.5 - 1.0
        return {
            "pixel_values": pixels,
            "mask": torch.from_numpy(np.array(mask, dtype=np.int64)),
            "index": torch.tensor(index, dtype=torch.int64),
        }


class StepBatchSampler(Sampler[list[int]]):
    """Index lists for micro-batches ``start, start + 1, ...`` of one process, forever.

    Micro-batch ``m`` of process ``rank`` takes positions ``m*B*P + rank*B ... + B - 1`` of the
    concatenation of permutations ``perm(seed, epoch)`` of ``range(n)`` (``B`` the per-process batch
    size, ``P`` the number of processes), so the processes see disjoint samples.
    """

    def __init__(self, n: int, batch_size: int, seed: int = 0, start: int = 0, num_replicas: int = 1, rank: int = 0):
        if n < 1:
            raise ValueError("cannot sample batches from an empty dataset")
        self.n, self.batch_size, self.seed, self.start = n, batch_size, seed, start
        self.num_replicas, self.rank = num_replicas, rank
        self._perm_epoch, self._perm = -1, np.arange(0)

    def _permutation(self, epoch: int) -> np.ndarray:
        if epoch != self._perm_epoch:
            self._perm = np.random.default_rng([self.seed, epoch]).permutation(self.n)
            self._perm_epoch = epoch
        return self._perm

    def batch_indices(self, micro: int) -> list[int]:
        first = (micro * self.num_replicas + self.rank) * self.batch_size
        out = []
        for pos in range(first, first + self.batch_size):
            out.append(int(self._permutation(pos // self.n)[pos % self.n]))
        return out

    def __iter__(self) -> Iterator[list[int]]:
        micro = self.start
        while True:
            yield self.batch_indices(micro)
            micro += 1

    def __len__(self) -> int:  # infinite; DataLoader only needs it for len(loader)
        return 2**62


def step_batches(
    dataset: SegmentationDataset,
    batch_size: int,
    seed: int,
    start_micro: int = 0,
    num_replicas: int = 1,
    rank: int = 0,
    num_workers: int = 0,
    cache_bytes: int = 0,
) -> Iterator[dict[str, torch.Tensor]]:
    """An endless iterator of collated micro-batches starting at micro-batch ``start_micro``
    (``cache_bytes``: decoded samples kept in memory, per loader process; :class:`ImageMaskSamples`)."""
    sampler = StepBatchSampler(len(dataset), batch_size, seed, start_micro, num_replicas, rank)
    loader = DataLoader(
        ImageMaskSamples(dataset, cache_bytes),
        batch_sampler=sampler,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
    )
    return iter(loader)
