"""Batches for training and evaluation from uint8 patches held once on the training device.

The augmented training set is never materialised: the sampled uint8 patches sit once on the
device (on the GPU when training there), the augmented index ((M, 3) sample, colour op,
orientation; 9.6x the samples) sits beside them, and each batch is gathered, augmented and
whitened by one fixed-shape function (:func:`gather_batch`). That function has no host sync
and no data-dependent shape, so it can be compiled (``compile=True``) and, on CUDA, captured
in a CUDA graph (``cuda_graph=True``), which removes the per-kernel launch overhead that
otherwise sets the speed at batch 512.

Typical use (the engine)::

    split = flaglimit_split(ps.labels, limit, seed)
    tr = ps.patches[split.train_idx]                 # gathers the sampled rows once
    mean = mean_image(tr)
    train = PatchBatches(tr, split.model_labels(ps.labels, split.train_idx), mean,
                         device=dev, augment=True, seed=seed, batch_size=512)
    for epoch in range(epochs):
        for x, y in train.epoch(epoch):              # x (B,3,40,40) whitened, y (B,) int64
            ...
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from trainer.data.augment import augment_rows, tables, to_float_chw
from trainer.formats.augment_plan import build_augmented_index, plain_index


def gather_batch(
    patches: torch.Tensor,
    labels: torch.Tensor,
    plan: torch.Tensor,
    sel: torch.Tensor,
    orient_table: torch.Tensor,
    colour_table: torch.Tensor,
    mean: torch.Tensor | None,
    augment: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One batch: rows ``sel`` of the plan -> (x (B, 3, S, S) float32, y (B,) int64).

    ``x`` is augmented (when ``augment``) and whitened (when ``mean`` is given). A pure
    function of tensors with fixed shapes: compile it or capture it in a CUDA graph."""
    rows = plan[sel]
    sample = rows[:, 0]
    if augment:
        x = augment_rows(patches, sample, rows[:, 1], rows[:, 2], orient_table, colour_table)
    else:
        x = to_float_chw(patches[sample])
    if mean is not None:
        x = x - mean
    return x, labels[sample]


# A captured CUDA graph of one batch: the graph, its input rows, its output batch x and y.
_Captured = tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor, torch.Tensor]


class PatchBatches:
    """Shuffled (or ordered) batches of whitened, optionally augmented samples.

    ``patches_u8`` (n, S, S, 3) uint8 and ``labels`` (n,) int (the model's class indices) are
    copied once to ``device``; ``mean`` is the (3, S, S) mean image (None: no whitening, for
    models that take [0, 1] input). With ``augment`` the samples are the study's augmented
    set (:func:`build_augmented_index` with ``seed``), else each patch once as it is.

    ``cuda_graph`` (CUDA only) replays a captured graph for every full batch. The tensors it
    yields are then copies unless ``reuse_output=True``, in which case they are the graph's
    own buffers, overwritten by the next batch (fastest; use them before asking for the next).
    """

    def __init__(
        self,
        patches_u8: np.ndarray | torch.Tensor,
        labels: np.ndarray | torch.Tensor,
        mean: np.ndarray | torch.Tensor | None = None,
        *,
        device: torch.device | str = "cpu",
        augment: bool = False,
        seed: int = 42,
        batch_size: int = 512,
        shuffle: bool | None = None,
        drop_last: bool = False,
        compile: bool = False,
        cuda_graph: bool = False,
        reuse_output: bool = False,
    ) -> None:
        self.device = torch.device(device)
        self.patches = _to_device(patches_u8, torch.uint8, self.device)
        if self.patches.ndim != 4 or self.patches.shape[3] != 3:
            raise ValueError(f"patches must be (n, S, S, 3), got {tuple(self.patches.shape)}")
        n = self.patches.shape[0]
        self.labels = _to_device(labels, torch.int64, self.device)
        if self.labels.shape != (n,):
            raise ValueError(f"{n} patches but labels have shape {tuple(self.labels.shape)}")
        self.mean = None if mean is None else _to_device(mean, torch.float32, self.device)
        self.augment = augment
        self.seed = seed
        self.batch_size = int(batch_size)
        self.shuffle = augment if shuffle is None else shuffle
        self.drop_last = drop_last
        plan = build_augmented_index(n, seed) if augment else plain_index(n)
        self.plan = torch.from_numpy(plan).to(self.device)
        self.orient_table, self.colour_table = tables(self.device, self.patches.shape[1])
        self._fn = torch.compile(gather_batch, dynamic=False) if compile else gather_batch
        self.cuda_graph = cuda_graph and self.device.type == "cuda"
        self.reuse_output = reuse_output
        self._graph: _Captured | None = None

    @property
    def n_samples(self) -> int:
        """Samples per epoch (9.6x the patches when augmenting)."""
        return int(self.plan.shape[0])

    def __len__(self) -> int:
        full, rest = divmod(self.n_samples, self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    def order(self, epoch: int = 0) -> torch.Tensor:
        """The plan rows of ``epoch`` in batch order (a permutation seeded by seed and epoch)."""
        if self.shuffle:
            perm = np.random.default_rng([self.seed, epoch]).permutation(self.n_samples)
            return torch.from_numpy(perm).to(self.device)
        return torch.arange(self.n_samples, device=self.device)

    def batch(self, sel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch made of plan rows ``sel`` (an int64 tensor on the device)."""
        if self.cuda_graph and sel.shape[0] == self.batch_size:
            if self._graph is None:
                self._graph = self._capture()
            graph, static_sel, static_x, static_y = self._graph
            static_sel.copy_(sel)
            graph.replay()
            if self.reuse_output:
                return static_x, static_y
            return static_x.clone(), static_y.clone()
        return self._call(sel)

    def epoch(self, epoch: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield (x, y) for every batch of ``epoch``."""
        order = self.order(epoch)
        for k in range(len(self)):
            yield self.batch(order[k * self.batch_size:(k + 1) * self.batch_size])

    def _call(self, sel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self._fn(self.patches, self.labels, self.plan, sel, self.orient_table,
                        self.colour_table, self.mean, self.augment)

    def _capture(self) -> _Captured:
        static_sel = torch.zeros(self.batch_size, dtype=torch.int64, device=self.device)
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):  # warm up (and compile) outside the capture
            for _ in range(3):
                self._call(static_sel)
        torch.cuda.current_stream(self.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_x, static_y = self._call(static_sel)
        return graph, static_sel, static_x, static_y


def _to_device(
    a: np.ndarray | torch.Tensor, dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    if isinstance(a, torch.Tensor):
        return a.to(device=device, dtype=dtype)
    np_dtype = {torch.uint8: np.uint8, torch.int64: np.int64, torch.float32: np.float32}[dtype]
    arr = np.require(np.asarray(a), np_dtype, ["C_CONTIGUOUS", "WRITEABLE"])
    return torch.from_numpy(arr).to(device)
