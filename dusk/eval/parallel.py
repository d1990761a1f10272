"""Data-parallel evaluation: under `accelerate launch --num_processes N -m dusk eval ...` (or torchrun) each process
scores a share of the items and the main process gathers every item's result, then alone writes the outputs.

The work is split into whole blocks of a task's items (an MMLU subject, a task, or a contiguous part of a task
bigger than 1/64 of all the tokens), so the prefixes items share (a subject's few-shot examples) stay together;
blocks go to the least-loaded process, largest first, by token count. The blocks depend on the items only, not on
the number of processes, and each block is one engine call: a block is batched the same way whichever process runs
it, so the results do not depend on N (not even by float rounding). Every process builds the same blocks from the
same prepared items, so no plan is exchanged.

    accelerate launch --num_processes 2 -m dusk eval tiny-llama --tasks arc_challenge,gsm8k --limit 8
"""

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from math import ceil

from tqdm import tqdm

PIECES = 64  # a unit bigger than 1/PIECES of all the tokens is cut: balance for up to ~PIECES/4 processes


@dataclass(frozen=True)
class Processes:
    """This process's place among the launched ones (one process: rank 0 of 1)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def launched() -> Processes:
    """Rank, world size and local rank from the launcher's environment (accelerate launch and torchrun set them)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return Processes(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))


def start(processes: Processes, device: str) -> None:
    """Join the process group (NCCL between GPUs, gloo on the CPU); nothing to do for one process."""
    import torch.distributed as dist

    if processes.world == 1 or dist.is_initialized():
        return
    dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")


def rank_device(device: str, processes: Processes) -> str:
    """Each process on its own GPU: `auto`/`cuda` become cuda:LOCAL_RANK when several processes run."""
    if processes.world > 1 and device in ("auto", "cuda"):
        import torch

        if torch.cuda.is_available():
            return f"cuda:{processes.local_rank % torch.cuda.device_count()}"
    return device


@dataclass(frozen=True)
class Block:
    """Contiguous items [start, stop) of unit `unit` (a task's run), and their estimated token cost."""

    unit: int
    start: int
    stop: int
    cost: float


def blocks(costs: Sequence[float], sizes: Sequence[int], pieces: int = PIECES) -> list[Block]:
    """Cut each unit into as few contiguous blocks as keep each under 1/pieces of all the tokens (independent of the
    number of processes, so each block's computation is the same whichever process runs it)."""
    cap = max(sum(costs) / pieces, 1e-9)
    cut = []
    for unit, (cost, size) in enumerate(zip(costs, sizes, strict=True)):
        parts = max(1, min(size, ceil(cost / cap - 1e-9)))
        bounds = [round(size * k / parts) for k in range(parts + 1)]
        cut += [Block(unit, a, b, cost * (b - a) / size) for a, b in zip(bounds, bounds[1:], strict=False) if b > a]
    return cut


def assign(cut: Sequence[Block], world: int) -> list[list[Block]]:
    """Largest block first to the process with the fewest tokens so far (ties: the lower rank)."""
    loads, shares = [0.0] * world, [[] for _ in range(world)]
    for block in sorted(cut, key=lambda b: (-b.cost, b.unit, b.start)):
        rank = min(range(world), key=lambda r: (loads[r], r))
        loads[rank] += block.cost
        shares[rank].append(block)
    return [sorted(share, key=lambda b: (b.unit, b.start)) for share in shares]


def gather_to_main(processes: Processes, mine: object) -> list[object] | None:
    """Every process's `mine` on the main process, by rank (None elsewhere); one process: [mine]."""
    if processes.world == 1:
        return [mine]
    import torch.distributed as dist

    gathered = [None] * processes.world if processes.main else None
    dist.gather_object(mine, gathered, dst=0)
    return gathered


def share_out(
    processes: Processes,
    units: Sequence[Sequence[object]],
    costs: Sequence[float],
    work: Callable[[list[object]], list[object]],
) -> list[list[object]] | None:
    """Run `work` once per block of this process's share of `units` (lists of items) and return, on the main process
    only, every unit's results in item order (None on the others)."""
    mine = assign(blocks(costs, [len(unit) for unit in units]), processes.world)[processes.rank]
    results = []
    desc = "scoring blocks" if processes.world == 1 else f"scoring blocks (process {processes.rank})"
    for block in tqdm(mine, desc=desc, unit="block", disable=not processes.main):  # shown on stderr, piped or not
        results += work(list(units[block.unit][block.start : block.stop]))
    where = [(block.unit, index) for block in mine for index in range(block.start, block.stop)]
    gathered = gather_to_main(processes, list(zip(where, results, strict=True)))
    if gathered is None:
        return None
    placed: list[list[object]] = [[None] * len(unit) for unit in units]
    for part in gathered:
        for (unit, index), result in part:
            placed[unit][index] = result
    return placed
