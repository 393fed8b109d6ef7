"""One bias profile type: the three book profiles, overrides from a notebook's namespace, the plan's names."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from crowdkit.bias.profiles import PROFILES, BiasProfile, get_profile
from crowdkit.common.exceptions import ConfigError


def test_the_book_profiles_keep_their_numbers():
    quick, default, full = get_profile("quick"), get_profile("default"), get_profile("full")
    assert (quick.max_train_per_class, quick.max_test_per_class, quick.max_identities, quick.max_images) == (40, 20, 30, 5)
    assert (default.max_train_per_class, default.max_identities, default.max_images) == (None, None, 10)
    assert full.max_images == 10 and full.max_identities is None
    q = quick.train_config()
    assert (q.backbone, q.epochs, q.batches_per_epoch, q.people_per_batch, q.images_per_person, q.lr) == (
        "projection", 5, 5, 15, 10, 1e-4)
    assert quick.seeds == (0, 1) and default.seeds == (0, 1, 2, 3, 4) and full.seeds == (0, 1, 2)
    d = default.train_config()
    assert (d.epochs, d.batches_per_epoch, d.lr, d.keep_epochs) == (30, 10, 1e-4, ())
    f = full.train_config()
    assert (f.backbone, f.epochs, f.batches_per_epoch, f.people_per_batch, f.images_per_person, f.lr, f.keep_epochs) == (
        "inception_resnet_v1", 75, 1000, 45, 40, 0.05, (30, 50, 75))
    assert quick.n_pairs == 600 and default.n_pairs is None and full.n_pairs is None


def test_unknown_profile_lists_the_known_ones():
    with pytest.raises(ConfigError, match="quick, default, full"):
        get_profile("fast")


def test_overrides_auto_keeps_and_unknown_fields_are_refused():
    quick = get_profile("quick")
    changed = quick.with_overrides(epochs=2, max_images="auto", max_identities=None, seeds=[3])
    assert (changed.epochs, changed.max_images, changed.max_identities, changed.seeds) == (2, 5, None, (3,))
    assert changed.train_config(sampler="stratified").sampler == "stratified"
    with pytest.raises(ConfigError, match="no field"):
        quick.with_overrides(epoch=3)


def test_from_namespace_picks_the_fields_it_knows():
    namespace = {"profile": "quick", "backbone": "auto", "epochs": 3, "seed": 7, "n_batches": 200, "n_pairs": "auto"}
    profile = BiasProfile.from_namespace(namespace)
    assert profile.name == "quick" and profile.epochs == 3 and profile.backbone == "projection"
    assert profile.n_pairs == 600 and profile.seeds == (0, 1)  # "seed" is not a profile field


def test_run_root(isolated_home):
    quick = get_profile("quick")
    assert quick.run_root() == isolated_home / "runs" / "bias-quick-projection"
    assert quick.run_root("elsewhere") == Path("elsewhere")


def test_the_plan_offers_exactly_these_profiles():
    plan = yaml.safe_load((Path(__file__).resolve().parents[2] / "data" / "plans" / "bias.yaml").read_text())
    assert set(plan["profiles"]) == set(PROFILES)
    assert all(p["parameters"] == {"profile": name} for name, p in plan["profiles"].items())
