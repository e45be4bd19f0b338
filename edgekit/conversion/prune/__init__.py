"""Pruning before conversion: magnitude.py (zeros: smaller archives), channel_graph.py and channels.py
(fewer filters: faster models), finetune.py (recovering accuracy), model.py (the two together, as
`convert` runs them), compare.py (pruned beside unpruned after conversion).

`PruneSettings` is the pruning part of a recipe, as the prune step and its report take it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edgekit import defaults
from edgekit.conversion.recipe import ConvertOptions, check_finetuning, check_pruning


@dataclass(frozen=True)
class PruneSettings:
    """What to prune and how: `sparsity` (magnitude), `channels` (structured), or both; checked when made."""

    sparsity: float | None = None
    channels: float | None = None
    skip: tuple[str, ...] = ()
    include: tuple[str, ...] = ()
    block: int | None = None  # None: FINETUNED_BLOCK with fine-tuning data, single weights without
    norm: str = defaults.PRUNE_NORM
    multiple: int = defaults.PRUNE_CHANNELS_MULTIPLE  # channel counts rounded to multiples of this
    epochs: int = defaults.FINETUNE_EPOCHS
    learning_rate: float = defaults.FINETUNE_LEARNING_RATE

    def __post_init__(self) -> None:
        check_pruning(self.sparsity, self.channels, self.skip, self.include, self.block, self.norm, self.multiple)
        check_finetuning(self.epochs, self.learning_rate)

    @classmethod
    def from_recipe(cls, recipe: ConvertOptions) -> PruneSettings:
        return cls(
            sparsity=recipe.prune,
            channels=recipe.prune_channels,
            skip=recipe.prune_skip,
            include=recipe.prune_include,
            block=recipe.prune_block,
            norm=recipe.prune_norm,
            multiple=recipe.prune_channels_multiple,
            epochs=recipe.finetune_epochs or defaults.FINETUNE_EPOCHS,
            learning_rate=recipe.finetune_lr or defaults.FINETUNE_LEARNING_RATE,
        )

    @property
    def active(self) -> bool:
        return self.sparsity is not None or self.channels is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "sparsity": self.sparsity,
            "channels": self.channels,
            "skip": list(self.skip),
            "include": list(self.include),
            "block": self.block,
            "norm": self.norm,
            "multiple": self.multiple,
            "epochs": self.epochs,
            "learning_rate": self.learning_rate,
        }
