"""Datasets that read lazily, behind one interface.

`load_dataset(source)` takes a bundled name (`digits`, `mnist5k`, `mnist5k-clutter`) or a path (an
image folder, a `train/` + `val/` pair of them, CIFAR-10/100 python batches, an `.npz`) and returns
a `Dataset` whose `train` and `val` are `Split`s: map-style torch datasets that decode an image
when a `DataLoader` (worker) asks for it. `loader` builds the training loader: a distributed,
epoch-seeded sampler whose keys seed each sample's augmentation. Nothing is downloaded.
"""

from quadnas.data.load import Dataset, load_dataset, stratified_subset
from quadnas.data.readers import BUNDLED
from quadnas.data.sources import UnreadableImage
from quadnas.data.split import Split, take
from quadnas.data.transforms import AUGMENTS, Augment

__all__ = [
    "AUGMENTS",
    "BUNDLED",
    "Augment",
    "Dataset",
    "Split",
    "UnreadableImage",
    "load_dataset",
    "stratified_subset",
    "take",
]
