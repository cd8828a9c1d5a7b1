"""The procedural image world (embedded default): class-conditional images, a pure function of (seed, index)."""

from ardistill.data.dataset import SPLITS, ProceduralImages, split_images, stream_seed
from ardistill.data.procedural import CLASS_NAMES, NUM_CLASSES, SIZES, labels_of, make_images

__all__ = [
    "CLASS_NAMES", "NUM_CLASSES", "SIZES", "SPLITS", "ProceduralImages", "labels_of", "make_images",
    "split_images", "stream_seed",
]
