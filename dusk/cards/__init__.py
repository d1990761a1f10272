"""Model cards: a Hub README.md for every model directory dusk writes (see docs/cards.md)."""

from dusk.cards.card import write_card

__all__ = ["write_card"]
