"""crowdkit.crowd.params: values checked up front, a notebook's namespace taken as parameters, threshold defaults."""
from __future__ import annotations

import pytest

from crowdkit.common.exceptions import ConfigError
from crowdkit.crowd.params import CrowdRunParams, resolve_threshold

MEMBER = "Colin_Powell"


@pytest.mark.parametrize("kwargs, error", [
    ({"challenge": "party"}, ConfigError),
    ({"challenge": "normal", "video": "v.mp4"}, ConfigError),
    ({"challenge": "normal", "frame_stride": 0}, ConfigError),
    ({"challenge": "normal", "matching_rule": "overlap"}, ConfigError),
    ({"challenge": "normal", "metric": "manhattan"}, ConfigError),
    ({"challenge": "normal", "crowd_size": 1}, ConfigError),
    ({"challenge": "normal", "crowd_size": 61}, ConfigError),
    ({"challenge": "normal", "crowd_size": True}, ConfigError),
    ({"challenge": "normal", "crowd_size": "many"}, ConfigError),
    ({"challenge": "normal", "subjects_together": "yes"}, ConfigError),
])
def test_bad_parameters_are_refused(kwargs, error):
    with pytest.raises(error):
        CrowdRunParams(member=MEMBER, **kwargs)


def test_threshold_defaults():
    class Fake:
        def __init__(self, name):
            self.name = name
            self.thresholds = {"cosine": 0.4, "euclidean": 1.0}

    base = dict(member=MEMBER, challenge="normal")
    assert resolve_threshold(CrowdRunParams(**base, model="arcface"), Fake("arcface"))[0] == 0.65
    assert resolve_threshold(CrowdRunParams(**base), Fake("dlib"))[0] == 0.4
    assert resolve_threshold(CrowdRunParams(**base, metric="euclidean"), Fake("arcface"))[0] == 1.0
    assert resolve_threshold(CrowdRunParams(**base, threshold=0.3), Fake("dlib")) == (0.3, "given")


def test_bad_values_say_which_parameter_and_what_it_accepts():
    with pytest.raises(ConfigError, match="unknown metric 'manhattan'; known metrics: cosine"):
        CrowdRunParams(member=MEMBER, challenge="normal", metric="manhattan")
    with pytest.raises(ConfigError, match="max_frames"):
        CrowdRunParams(member=MEMBER, challenge="normal", max_frames=0)
    with pytest.raises(ConfigError, match="threshold must be a finite number"):
        CrowdRunParams(member=MEMBER, challenge="normal", threshold=float("nan"))


def test_from_namespace_takes_the_names_it_knows():
    namespace = {"member": MEMBER, "challenge": "mask2", "frame_stride": 4, "run_dir": "book/runs/x",
                 "query_photos": "me.jpg", "pd": object()}
    params = CrowdRunParams.from_namespace(namespace)
    assert (params.challenge, params.frame_stride, params.query_photos) == ("mask2", 4, ("me.jpg",))
    assert params.rules == ("study", "iou") and params.main_rule == "iou"
    assert CrowdRunParams.from_namespace({**namespace, "matching_rule": "study"}).main_rule == "study"
    assert params.to_frame().loc["frame_stride", "value"] == 4


def test_crowd_size_sets_the_simulated_crowd():
    from crowdkit.crowd.inputs import scene_spec

    assert scene_spec(CrowdRunParams(member="Peter", challenge="normal", crowd_size=30)).n_people == 30
    assert scene_spec(CrowdRunParams(member="Peter", challenge="normal")).n_people is None
    assert scene_spec(CrowdRunParams(member="Peter", challenge="normal")).subjects_together
    assert not scene_spec(CrowdRunParams(member="Peter", challenge="normal", subjects_together=False)).subjects_together
