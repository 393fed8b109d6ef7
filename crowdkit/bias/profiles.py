"""The bias study's book profiles: one :class:`BiasProfile` per name, read by every bias notebook.

``quick`` and ``default`` run on a CPU: a projection head on cached dlib
descriptors of CelebA, seconds per run; lr 1e-4 because the head starts at
dlib's embedding and 1e-3 drifts further from it on 120 training identities
(LFW 0.980 vs 0.985 on 600 pairs, seed 0). ``full`` is the study's set-up for
a GPU: facenet-pytorch's Inception-ResNet-v1 from scratch on 160 px MTCNN
crops, FaceNet's batch shape (45 people × 40 images), 1000 batches per epoch,
one 75-epoch run per arm and seed keeping the 30- and 50-epoch checkpoints.

The plan ``data/plans/bias.yaml`` passes only the name (``-p profile quick``);
a notebook's own parameters override single fields (``"auto"``: the profile's).

Example
-------
>>> get_profile("quick").max_identities
30
>>> get_profile("quick").with_overrides(epochs=2, max_images="auto").train_config().epochs
2
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Mapping

from crowdkit.bias.train_config import TrainConfig
from crowdkit.common import config
from crowdkit.common.exceptions import ConfigError

#: A notebook parameter with this value keeps the profile's setting.
AUTO = "auto"

#: Fields of :class:`BiasProfile` that are also :class:`TrainConfig` fields.
_TRAIN_FIELDS = ("backbone", "epochs", "batches_per_epoch", "people_per_batch", "images_per_person", "lr",
                 "keep_epochs")


@dataclass(frozen=True)
class BiasProfile:
    """Sizes, training set-up and seeds of one book profile.

    Attributes
    ----------
    name : "quick", "default" or "full".
    max_train_per_class : UTKFace images per class the classifier is fitted on (None: the whole 70 % split).
    max_test_per_class : held-out images per class it is measured on (None: the whole 30 % split).
    max_identities : CelebA identities in the lookup table and the training set (None: all).
    max_images : photos per identity the lookup table averages over (the study used 10).
    backbone, epochs, batches_per_epoch, people_per_batch, images_per_person, lr, keep_epochs :
        the :class:`TrainConfig` of both arms.
    seeds : the training seeds; each arm is trained once per seed.
    n_pairs : LFW View 2 pairs evaluated (None: all 6,000).
    lfw_identities, lfw_images : the LFW people (with ≥ 2 photos) and photos per person the all-of-LFW
        per-group rates and identification embed (None, None: every LFW image);
        :class:`crowdkit.bias.lfw_images.LFWSubset`.
    """

    name: str
    max_train_per_class: int | None
    max_test_per_class: int | None
    max_identities: int | None
    max_images: int
    backbone: str
    epochs: int
    batches_per_epoch: int
    people_per_batch: int
    images_per_person: int
    lr: float
    seeds: tuple[int, ...]
    keep_epochs: tuple[int, ...] = ()
    n_pairs: int | None = None
    lfw_identities: int | None = None
    lfw_images: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "seeds", tuple(int(s) for s in self.seeds))
        object.__setattr__(self, "keep_epochs", tuple(int(e) for e in self.keep_epochs))
        if not self.seeds:
            raise ConfigError(f"profile {self.name!r} needs at least one training seed")

    def with_overrides(self, **overrides: Any) -> "BiasProfile":
        """This profile with some fields replaced; a value of ``"auto"`` keeps the profile's own."""
        known = {f.name for f in fields(self)} - {"name"}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ConfigError(f"BiasProfile has no field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return replace(self, **{k: v for k, v in overrides.items() if not (isinstance(v, str) and v == AUTO)})

    @classmethod
    def from_namespace(cls, namespace: Mapping[str, Any]) -> "BiasProfile":
        """The profile named ``namespace["profile"]`` with the namespace's values for the fields it knows.

        A notebook passes ``globals()``: its parameters cell names the profile
        and may set any field (``"auto"`` keeps the profile's value); other
        names are ignored.
        """
        base = get_profile(namespace.get("profile", "default"))
        known = {f.name for f in fields(cls)} - {"name"}
        return base.with_overrides(**{k: v for k, v in namespace.items() if k in known})

    def train_config(self, **overrides: Any) -> TrainConfig:
        """The base :class:`TrainConfig` of both arms (sampler and seed are set per run)."""
        return TrainConfig(**{name: getattr(self, name) for name in _TRAIN_FIELDS}, **overrides)

    def run_root(self, run_root: str | None = None) -> Path:
        """Where the training runs of this profile live: ``run_root``, else ``$CROWDKIT_HOME/runs/bias-<name>-<backbone>``."""
        return Path(run_root) if run_root else config.home() / "runs" / f"bias-{self.name}-{self.backbone}"


#: The three book profiles (numbers as the book has always used them).
PROFILES: dict[str, BiasProfile] = {
    "quick": BiasProfile(name="quick", max_train_per_class=40, max_test_per_class=20, max_identities=30, max_images=5,
                         backbone="projection", epochs=5, batches_per_epoch=5, people_per_batch=15,
                         images_per_person=10, lr=1e-4, seeds=(0, 1), n_pairs=600,
                         lfw_identities=200, lfw_images=10),
    "default": BiasProfile(name="default", max_train_per_class=None, max_test_per_class=None, max_identities=None,
                           max_images=10, backbone="projection", epochs=30, batches_per_epoch=10, people_per_batch=15,
                           images_per_person=10, lr=1e-4, seeds=(0, 1, 2, 3, 4)),  # every LFW image (13,233)
    "full": BiasProfile(name="full", max_train_per_class=None, max_test_per_class=None, max_identities=None,
                        max_images=10, backbone="inception_resnet_v1", epochs=75, batches_per_epoch=1000,
                        people_per_batch=45, images_per_person=40, lr=0.05, seeds=(0, 1, 2), keep_epochs=(30, 50, 75)),
}


def get_profile(name: str) -> BiasProfile:
    """The profile called ``name``; an unknown name raises :class:`ConfigError` listing the known ones."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ConfigError(f"unknown profile {name!r}; known profiles: {', '.join(PROFILES)}") from None
