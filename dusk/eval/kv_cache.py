"""Forward token segments on top of cached keys/values, one batch row per segment, each row with its own past.

A `KVState` is a batch of rows: per layer the keys/values `[rows, kv_heads, past, head_dim]`, a boolean mask of
which past slots are real (rows of a batch have different lengths: padding can sit anywhere in the past, not
only at the end), and each row's true length (the position id of its next token). `forward_segments` selects
parent rows (repeats allowed: the choices of one question all read its context's cache), appends one segment
per row with a 4D mask (every real past slot, plus causal attention within the segment) and explicit position
ids, so a row computes exactly what the unpadded sequence would, up to float rounding.

    python -c "from dusk.eval.kv_cache import KVState; print(KVState.empty('cpu'))"
"""

from dataclasses import dataclass

import torch
from transformers.cache_utils import Cache, DynamicCache, DynamicLayer


class GrowingLayer(DynamicLayer):
    """A cache layer whose keys/values sit in a buffer with spare slots, so appending a token (decoding) writes in
    place instead of copying the whole past as `DynamicLayer`'s concatenation does."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, spare: int) -> None:
        super().__init__()
        self.device, self.is_initialized, self.filled = keys.device, True, keys.shape[2]
        self._keys, self._values = self._allocate(keys, spare), self._allocate(values, spare)
        self.keys, self.values = keys, values

    @staticmethod
    def _allocate(cached: torch.Tensor, spare: int) -> torch.Tensor:
        rows, heads, past, dim = cached.shape
        buffer = cached.new_empty(rows, heads, past + spare, dim)
        buffer[:, :, :past] = cached
        return buffer

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        end = self.filled + key_states.shape[2]
        if end > self._keys.shape[2]:  # out of room: a new buffer with twice the room
            spare = 2 * max(end - self.filled, self._keys.shape[2] - self.filled)
            self._keys, self._values = self._allocate(self.keys, spare), self._allocate(self.values, spare)
        self._keys[:, :, self.filled : end] = key_states
        self._values[:, :, self.filled : end] = value_states
        self.filled = end
        self.keys, self.values = self._keys[:, :, :end], self._values[:, :, :end]
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.filled


@dataclass
class KVState:
    """Cached keys/values of a batch of rows, which past slots are real, and each row's true length."""

    kv: list[tuple[torch.Tensor, torch.Tensor]] | None  # per layer (keys, values): [rows, heads, past, head_dim]
    mask: torch.Tensor  # [rows, past] bool: slot holds a real token of this row
    lengths: torch.Tensor  # [rows] long: tokens of the row so far = position id of its next token
    growing: list[GrowingLayer] | None = None  # the buffers behind `kv` when they have room to append in place

    @staticmethod
    def empty(device: str | torch.device) -> "KVState":
        """One row with nothing cached (the root of every walk)."""
        return KVState(None, torch.zeros(1, 0, dtype=torch.bool, device=device), torch.zeros(1, dtype=torch.long))

    @property
    def past(self) -> int:
        return self.mask.shape[1]

    def select(self, rows: list[int]) -> "KVState":
        """The state of these rows, in this order (repeats allowed)."""
        index = torch.tensor(rows, dtype=torch.long, device=self.mask.device)
        kv = None if self.kv is None else [(k.index_select(0, index), v.index_select(0, index)) for k, v in self.kv]
        return KVState(kv, self.mask.index_select(0, index), self.lengths.index_select(0, index.cpu()))

    def trim(self) -> "KVState":
        """The same rows without the trailing past slots that no row uses (after `truncate`)."""
        used = int(self.mask.any(dim=0).nonzero().max()) + 1 if self.mask.any() else 0
        if used == self.past:
            return self
        kv = None if self.kv is None else [(k[:, :, :used], v[:, :, :used]) for k, v in self.kv]
        return KVState(kv, self.mask[:, :used], self.lengths)

    @staticmethod
    def concat(states: list["KVState"]) -> "KVState":
        """The rows of all `states` in one state: each past padded at its end (masked) to the longest."""
        if len(states) == 1:
            return states[0]
        past = max(state.past for state in states)

        def padded(tensor: torch.Tensor, missing: int) -> torch.Tensor:  # [rows, heads, past, dim] -> longer past
            return torch.nn.functional.pad(tensor, (0, 0, 0, missing)) if missing else tensor

        kv = [
            tuple(torch.cat([padded(state.kv[layer][part], past - state.past) for state in states]) for part in (0, 1))
            for layer in range(len(states[0].kv))
        ]
        mask = torch.cat([torch.nn.functional.pad(state.mask, (0, past - state.past)) for state in states])
        return KVState(kv, mask, torch.cat([state.lengths for state in states]))

    def truncate(self, keep: torch.Tensor) -> "KVState":
        """Forget, per row, every slot at index >= keep[row]; the row's length becomes its count of real slots."""
        slots = torch.arange(self.past, device=self.mask.device)
        mask = self.mask & (slots[None, :] < keep.to(self.mask.device)[:, None])
        return KVState(self.kv, mask, mask.sum(dim=1).cpu(), self.growing)


def _attention_mask(key_mask: torch.Tensor, past: int, new: int, dtype: torch.dtype, eager: bool) -> torch.Tensor:
    """[rows, 1, new, past+new]: query i sees every real past slot and the real segment tokens up to itself."""
    keys = torch.arange(past + new, device=key_mask.device)
    queries = torch.arange(new, device=key_mask.device) + past
    allowed = key_mask[:, None, None, :] & (keys[None, None, None, :] <= queries[None, None, :, None])
    if not eager:
        return allowed
    return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill(~allowed, torch.finfo(dtype).min)


def _cache(state: KVState, spare: int) -> tuple[Cache, list[GrowingLayer] | None]:
    """A transformers cache holding the state's past (in growing buffers when `spare` free slots are wanted)."""
    if state.growing is not None and state.growing[0].filled == state.past:
        return Cache(layers=state.growing), state.growing
    if state.kv is None:
        return DynamicCache(), None
    if spare <= 0:
        return DynamicCache(ddp_cache_data=state.kv), None
    growing = [GrowingLayer(keys, values, spare) for keys, values in state.kv]
    return Cache(layers=growing), growing


@torch.no_grad()
def forward_segments(
    decoder, state: KVState, segments: list[list[int]], pad_id: int, spare: int = 0
) -> tuple[torch.Tensor, KVState]:
    """Run `decoder` (the model without its LM head) on one segment per row of `state` (already selected).

    Returns the last hidden states `[rows, longest segment, hidden]` (padding positions hold junk) and the new
    state, whose past is the old past plus the segment slots. With `spare` > 0 the past is copied once into
    buffers with that many free slots, which later calls on the returned state fill in place (greedy decoding);
    calling again on an older state of the same buffers falls back to copying its past."""
    device = state.mask.device
    rows, longest = len(segments), max(len(s) for s in segments)
    ids = torch.full((rows, longest), pad_id, dtype=torch.long)
    new_mask = torch.zeros(rows, longest, dtype=torch.bool)
    for row, segment in enumerate(segments):
        ids[row, : len(segment)] = torch.tensor(segment, dtype=torch.long)
        new_mask[row, : len(segment)] = True
    positions = state.lengths[:, None] + torch.arange(longest)[None, :]
    key_mask = torch.cat([state.mask, new_mask.to(device)], dim=1)
    eager = getattr(decoder.config, "_attn_implementation", "sdpa") == "eager"
    mask = _attention_mask(key_mask, state.past, longest, decoder.dtype, eager)
    cache, growing = _cache(state, spare)
    out = decoder(
        input_ids=ids.to(device), attention_mask=mask, position_ids=positions.to(device), cache=cache, use_cache=True
    )
    kv = [(layer.keys, layer.values) for layer in cache.layers]
    lengths = state.lengths + new_mask.sum(dim=1)
    return out.last_hidden_state, KVState(kv, key_mask, lengths, growing)
