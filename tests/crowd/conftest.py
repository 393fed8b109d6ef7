"""Fixtures shared by the crowd run's tests: one CROWDKIT_HOME and one tiny run for the whole session."""
from __future__ import annotations

import pytest

MEMBER = "Colin_Powell"  # an LFW identity with many photos: the person to find


@pytest.fixture(scope="session")
def crowd_home(tmp_path_factory):
    """The CROWDKIT_HOME of the crowd run tests: scenes and face caches are shared between them."""
    return tmp_path_factory.mktemp("crowd_home")


@pytest.fixture(scope="module")
def home(crowd_home):
    """``crowd_home`` as CROWDKIT_HOME for the module's tests."""
    patch = pytest.MonkeyPatch()
    patch.setenv("CROWDKIT_HOME", str(crowd_home))
    yield crowd_home
    patch.undo()


@pytest.fixture(scope="session")
def tiny(crowd_home, tmp_path_factory):
    """A 20-frame normal scene searched every 5th frame, tables saved into a run folder: (result, run_dir)."""
    from crowdkit.crowd.params import CrowdRunParams
    from crowdkit.crowd.run import run_crowd

    run_dir = tmp_path_factory.mktemp("run") / "colin-normal"
    params = CrowdRunParams(member=MEMBER, challenge="normal", seed=0, max_frames=20, frame_stride=5)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CROWDKIT_HOME", str(crowd_home))
        return run_crowd(params, run_dir=run_dir, progress=False), run_dir
