"""Rank and world bookkeeping for training under ``torchrun`` (``WORLD_SIZE > 1``: gloo on CPU, nccl on
CUDA); a no-op in a single process, so the training loop reads the same either way."""
from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import nn


class Distributed:
    """Rank/world bookkeeping; a no-op outside torchrun."""

    def __init__(self, device: torch.device) -> None:
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.device = device
        if self.world > 1 and not dist.is_initialized():
            if device.type == "cuda":
                self.device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}")
                torch.cuda.set_device(self.device)
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def sync_buffers(self, module: nn.Module) -> None:
        """Give every rank rank 0's buffers (BN running statistics drift apart per rank)."""
        if self.world > 1:
            for buf in module.buffers():
                dist.broadcast(buf, 0)

    def replicas_identical(self, module: nn.Module) -> bool:
        """Whether every rank holds bit-identical parameters and buffers (checksums gathered)."""
        with torch.no_grad():
            flat = torch.cat([t.detach().double().flatten().cpu() for t in module.state_dict().values()])
            mine = torch.stack([flat.sum(), (flat * torch.arange(1, flat.numel() + 1, dtype=torch.float64)).sum()])
        gathered = [torch.zeros_like(mine) for _ in range(self.world)]
        dist.all_gather(gathered, mine.to(self.device) if self.device.type == "cuda" else mine)
        return all(torch.equal(g.cpu(), gathered[0].cpu()) for g in gathered)

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def close(self) -> None:
        if self.world > 1 and dist.is_initialized():
            dist.destroy_process_group()
