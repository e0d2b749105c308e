"""The MoCo machinery DSCL trains with (docs/methods/dscl.md §2.1, §2.3 steps 4 and 8, §2.4, §2.5): a momentum key
encoder, a labelled memory queue, and the key-encoder batch norm that keeps q_i and k_i from sharing batch statistics.

torch.distributed is optional: with no initialised process group every gather is the identity and the key BN is
the local `split` or `plain` form; with one, keys are all-gathered and the key BN is MoCo's cross-process shuffle.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

QUEUE_INITS = ("masked", "random")
KEY_BNS = ("split", "plain")

Embed = Callable[[nn.Module, Tensor], Tensor]  # (encoder, images) -> normalised embeddings


def world_size() -> int:
    """Processes in the default group; 1 when torch.distributed is unavailable or not initialised."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def gather(tensor: Tensor) -> Tensor:
    """Concatenate `tensor` (equal shapes on every rank) over processes in rank order; no gradient flows back.
    The identity without a process group."""
    if world_size() == 1:
        return tensor
    parts = [torch.empty_like(tensor) for _ in range(world_size())]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts)


def broadcast_buffers(module: nn.Module) -> None:
    """Copy rank 0's buffers into every process's `module` (one broadcast per dtype)."""
    buffers = list(module.buffers())
    for dtype in dict.fromkeys(b.dtype for b in buffers):
        group = [b for b in buffers if b.dtype == dtype]
        flat = torch.cat([b.reshape(-1) for b in group])
        dist.broadcast(flat, src=0)
        for buffer, part in zip(group, flat.split([b.numel() for b in group])):
            buffer.copy_(part.view_as(buffer))


def check_queue_size(size: int, global_batch: int) -> None:
    """Raise unless the queue size K is a multiple of the global batch (docs/methods/dscl.md §2.3 step 8), so that full
    batches land in contiguous blocks and the queue turns over in whole batches."""
    if size % global_batch:
        raise ValueError(f"queue_size {size} is not divisible by the global batch {global_batch} "
                         "(per-process batch × processes); pick a multiple of it")


class MemoryQueue(nn.Module):
    """K labelled, normalised keys written in a ring: buffers `features` (K, d), `labels` (K,), `pointer` and
    `filled` (the number of slots ever written, at most K).

    `init="masked"` (ltzoo): the queue starts empty and `contents()` returns only written slots. `init="random"`
    (official): K random unit vectors with random labels in [0, C), seeded, all valid from the start.
    """

    def __init__(self, size: int, dim: int, num_classes: int, init: str = "masked", seed: int = 0) -> None:
        super().__init__()
        if init not in QUEUE_INITS:
            raise ValueError(f"unknown queue_init {init!r}; choose one of {', '.join(QUEUE_INITS)}")
        if size <= 0:
            raise ValueError(f"queue size must be positive, got {size}")
        self.size, self.init = size, init
        if init == "random":
            generator = torch.Generator().manual_seed(seed)
            features = nn.functional.normalize(torch.randn(size, dim, generator=generator), dim=1)
            labels, filled = torch.randint(num_classes, (size,), generator=generator), size
        else:
            features, labels, filled = torch.zeros(size, dim), torch.zeros(size, dtype=torch.long), 0
        self.register_buffer("features", features)
        self.register_buffer("labels", labels)
        self.register_buffer("pointer", torch.zeros((), dtype=torch.long))
        self.register_buffer("filled", torch.tensor(filled, dtype=torch.long))
        self._filled = filled  # `filled` on the host, so a step never reads the device's copy back

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any) -> None:
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._filled = int(self.filled)  # once per resume

    def contents(self) -> tuple[Tensor, Tensor]:
        """Copies of the valid (features, labels): every slot for `random`, the written ones for `masked`.
        Copies, so a later `enqueue` cannot change what a loss already used."""
        return self.features[: self._filled].clone(), self.labels[: self._filled].clone()

    @torch.no_grad()
    def enqueue(self, keys: Tensor, labels: Tensor) -> None:
        """Write all processes' keys and labels (rank order) at the pointer, wrapping modulo K."""
        keys, labels = gather(keys.detach().float()), gather(labels)
        count = keys.shape[0]
        if count > self.size:
            raise ValueError(f"cannot enqueue {count} keys into a queue of {self.size}")
        slots = (self.pointer + torch.arange(count, device=self.pointer.device)) % self.size
        self.features[slots] = keys.to(self.features.device)
        self.labels[slots] = labels.to(self.labels.device)
        self.pointer.copy_((self.pointer + count) % self.size)
        self.filled.copy_(torch.clamp(self.filled + count, max=self.size))
        self._filled = min(self._filled + count, self.size)


class MomentumKeyEncoder(nn.Module):
    """θ_k, a copy of the query encoder updated only by θ_k ← m·θ_k + (1 − m)·θ_q over parameters; its BN running
    statistics are its own (its train-mode forwards update them). No parameter requires grad, so an optimizer
    built from the query model never holds one.

    Keys k = embed(θ_k, x) are computed with:
    - world size > 1: MoCo's shuffle-BN: the global key batch is permuted (permutation drawn on rank 0 and
      broadcast), each process encodes its shard, the keys are gathered and un-permuted; then the BN buffers are
      broadcast from rank 0, as DDP does for the query encoder, so every rank holds (and checkpoints) the same state;
    - one process, `key_bn="split"`: the batch is permuted locally and encoded as `bn_splits` sub-batches, each
      with its own BN statistics, then un-permuted (a batch not divisible by `bn_splits`, e.g. an epoch's last,
      gives sub-batches differing by one image; one of fewer images than `bn_splits`, one image per sub-batch);
      `key_bn="plain"`: one ordinary pass.
    """

    def __init__(self, query_encoder: nn.Module, embed: Embed, momentum: float = 0.999, key_bn: str = "split",
                 bn_splits: int = 2) -> None:
        super().__init__()
        if key_bn not in KEY_BNS:
            raise ValueError(f"unknown key_bn {key_bn!r}; choose one of {', '.join(KEY_BNS)}")
        if not 0.0 <= momentum <= 1.0 or bn_splits < 1:
            raise ValueError(f"need 0 <= momentum <= 1 and bn_splits >= 1, got {momentum}, {bn_splits}")
        self.encoder = copy.deepcopy(query_encoder)
        self.encoder.requires_grad_(False)
        self.embed, self.momentum, self.key_bn, self.bn_splits = embed, momentum, key_bn, bn_splits

    @torch.no_grad()
    def update(self, query_encoder: nn.Module) -> None:
        """θ_k ← m·θ_k + (1 − m)·θ_q for every parameter (buffers untouched)."""
        for key, query in zip(self.encoder.parameters(), query_encoder.parameters(), strict=True):
            key.mul_(self.momentum).add_(query.detach().to(key.dtype), alpha=1.0 - self.momentum)

    @torch.no_grad()
    def forward(self, images: Tensor) -> Tensor:
        if world_size() > 1:
            return self._shuffled_across_processes(images)
        if self.key_bn == "plain":
            return self.embed(self.encoder, images)
        return self._split(images)

    def _split(self, images: Tensor) -> Tensor:
        batch = images.shape[0]
        order = torch.randperm(batch, device=images.device)
        groups = order.tensor_split(min(self.bn_splits, batch))
        keys = torch.cat([self.embed(self.encoder, images[part]) for part in groups])
        return keys[torch.argsort(order)]

    def _shuffled_across_processes(self, images: Tensor) -> Tensor:
        rank, processes = dist.get_rank(), world_size()
        everything = gather(images)
        order = torch.randperm(everything.shape[0], device=images.device)
        dist.broadcast(order, src=0)
        shard = order.view(processes, -1)[rank]
        keys = gather(self.embed(self.encoder, everything[shard]))
        broadcast_buffers(self.encoder)
        return keys[torch.argsort(order)].view(processes, -1, keys.shape[1])[rank]


class MoCo(nn.Module):
    """The key side of a MoCo-style method: the momentum key encoder and the labelled queue, checkpointed together
    as one state dict (key encoder parameters and BN buffers, queue features, labels, pointer, filled)."""

    def __init__(self, key_encoder: MomentumKeyEncoder, queue: MemoryQueue) -> None:
        super().__init__()
        self.key_encoder, self.queue = key_encoder, queue

    def keys(self, query_encoder: nn.Module, images: Tensor) -> Tensor:
        """One iteration's keys: first the momentum update from the query encoder, then the key pass."""
        self.key_encoder.update(query_encoder)
        return self.key_encoder(images)
