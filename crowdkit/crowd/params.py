"""The parameters of one crowd run, checked up front, and the decision threshold they imply.

A run page passes its own namespace, so its ``parameters`` cell is the only
place the values are typed::

    params = CrowdRunParams.from_namespace(globals())

Every value is checked when the object is made; a bad one raises
:class:`~crowdkit.common.exceptions.ConfigError` naming the parameter and the
values it accepts.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from crowdkit.common.exceptions import ConfigError

#: The study's decision threshold: cosine distance, tuned for ArcFace.
STUDY_THRESHOLD = 0.65
#: ``matching_rule`` values: one rule, or both.
MATCHING_RULES = ("study", "iou", "both")
#: Defaults of one run made by hand (a notebook in JupyterLab, ``run_crowd``): 150 frames, 30 searched, seconds
#: of CPU. The book's plan (``data/plans/crowd.yaml``) searches every frame of 1,000 instead, the study's scale.
DEFAULT_FRAME_STRIDE = 5
DEFAULT_MAX_FRAMES = 150
#: Frames a simulated scene has when ``max_frames`` is None.
FULL_SCENE_FRAMES = 300
#: The crowd runs' detector and, per detector, the options a run uses unless ``detector_options`` says otherwise.
#: YuNet at score 0.7 was chosen by the detector study (:mod:`crowdkit.crowd.detector_study`, the engine chapter):
#: it finds more of the small faces than MTCNN at the same precision, 5–7× faster; at its own default (0.6) it
#: adds false detections on the compact and random scenes.
CROWD_DETECTOR = "yunet"
CROWD_DETECTOR_OPTIONS: Mapping[str, Mapping[str, Any]] = {"yunet": {"score_threshold": 0.7}}
#: Decision levels reported side by side.
LEVELS = ("frame", "track")
#: Name of the query set holding every available photo.
ALL_PHOTOS = "all"


def _bad(what: str) -> ConfigError:
    return ConfigError(f"crowd run parameters: {what}")


@dataclass(frozen=True)
class CrowdRunParams:
    """The parameters of one run; the notebook's ``parameters`` cell mirrors them.

    Parameters
    ----------
    member : str
        Whose run it is. For a simulated scene: the person to find when it names an
        LFW identity (e.g. ``"Colin_Powell"``); a member of the study (``"Peter"``, see
        :data:`crowdkit.crowd.cast.CAST`) is played by its LFW identity and shares the
        challenge's scene with the other members who ran it; any other name is refused
        unless ``stand_in``. For a real video: the default ``subject``.
    challenge : str
        One of :data:`crowdkit.crowd.simulate.CHALLENGES` (any label for a real video).
    seed : int
        Scene seed (simulated scenes only).
    video, annotations : path or None
        A real video and its CVAT for video 1.1 export; both None: simulate the scene.
    query_photos : sequence of paths, or None
        Photos of the subject. None: the scene's frontal photo (the masked one for
        ``mask2``). Every photo given (or, for a scene, every photo it has) also
        forms the multi-photo query ``"all"``.
    subject : str or None
        The annotated ``identity`` of the person to find (real videos; default ``member``);
        for a simulated scene, an LFW identity to find instead of the one ``member`` names.
    matrix : str
        The run matrix (:data:`crowdkit.crowd.cast.MATRICES`: ``"study"`` or ``"all"``) that
        decides which members share a challenge's scene.
    stand_in : bool
        Allow a ``member`` that names no LFW identity and no study member: the scene's
        subject is then chosen from the name and the seed.
    crowd_size : int or None
        People in a simulated crowd, the members to find included (2–60; intruders come on top);
        None: 12–20, drawn from the seed.
    subjects_together : bool
        The people to find walk together in the middle of a simulated crowd (of its front row when it is
        compact) and the drone homes in on them (True), or they stand anywhere in it and the drone follows
        the subject alone.
    frame_stride : int
        Search every n-th frame.
    max_frames : int or None
        Frames of the video used (a simulated scene is rendered this long); None: all.
    detector, model, metric
        Backend names (:func:`crowdkit.engine.detect.get_detector`,
        :func:`crowdkit.engine.embed.get_embedder`) and distance (:data:`crowdkit.engine.match.METRICS`).
    detector_options : mapping or None
        Keyword options of the detector (e.g. ``{"score_threshold": 0.8}`` for YuNet); None: the crowd
        runs' own for that detector (:data:`CROWD_DETECTOR_OPTIONS`), else the detector's defaults.
    threshold : float or None
        Decision threshold; None: 0.65 for ArcFace with cosine (the study's value);
        for other models the threshold calibrated on LFW View 2 when
        ``calibration_pairs`` is set, otherwise the model's own default for the metric.
    calibration_pairs : int or None
        LFW View 2 pairs the calibration uses (:func:`crowdkit.engine.calibration.calibrate_threshold`;
        6000: all of them); None: no calibration.
    matching_rule : str
        ``"study"``, ``"iou"`` or ``"both"``.
    track_rule, track_k
        How a track decides (:data:`crowdkit.crowd.track.TRACK_RULES`; ``k`` for ``mean_of_k_best``).
    examples_per_outcome : int
        Thumbnails per outcome (the study showed two).
    """

    member: str
    challenge: str
    seed: int = 0
    video: str | None = None
    annotations: str | None = None
    query_photos: tuple[str, ...] | None = None
    subject: str | None = None
    matrix: str = "study"
    stand_in: bool = False
    crowd_size: int | None = None
    subjects_together: bool = True
    frame_stride: int = DEFAULT_FRAME_STRIDE
    max_frames: int | None = DEFAULT_MAX_FRAMES
    detector: str = CROWD_DETECTOR
    detector_options: Mapping[str, Any] | None = None
    model: str = "dlib"
    metric: str = "cosine"
    threshold: float | None = None
    calibration_pairs: int | None = None
    matching_rule: str = "both"
    track_rule: str = "mean_of_k_best"
    track_k: int = 3
    examples_per_outcome: int = 2

    def __post_init__(self) -> None:
        self._check_inputs()
        self._normalise_query_photos()
        self._normalise_detector_options()
        self._check_counts()
        self._check_names()
        if self.threshold is not None and not math.isfinite(float(self.threshold)):
            raise _bad(f"threshold must be a finite number or None, got {self.threshold!r}")

    def _check_inputs(self) -> None:
        from crowdkit.crowd.scene import CHALLENGES

        if not str(self.member).strip():
            raise _bad("member must be a non-empty name")
        if (self.video is None) != (self.annotations is None):
            raise _bad("give both video and annotations (a real video and its CVAT export), or neither "
                       "(a simulated scene)")
        if self.video is None and self.challenge not in CHALLENGES:
            raise _bad(f"unknown challenge {self.challenge!r} for a simulated scene; choose one of "
                       f"{', '.join(CHALLENGES)}")
        if self.video is not None and not self.query_photos:
            raise _bad("a real video needs query_photos: one or more photos of the person to find")

    def _normalise_query_photos(self) -> None:
        """A single path becomes a one-photo tuple; a list becomes a tuple of strings."""
        if isinstance(self.query_photos, (str, Path)):
            object.__setattr__(self, "query_photos", (str(self.query_photos),))
        elif self.query_photos is not None:
            object.__setattr__(self, "query_photos", tuple(str(p) for p in self.query_photos))
            if not self.query_photos:
                raise _bad("query_photos is an empty list; give photos or None")

    def _check_counts(self) -> None:
        for name in ("frame_stride", "track_k", "examples_per_outcome"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise _bad(f"{name} must be an integer ≥ 1, got {value!r}")
        if self.max_frames is not None and (isinstance(self.max_frames, bool) or int(self.max_frames) < 1):
            raise _bad(f"max_frames must be None or an integer ≥ 1, got {self.max_frames!r}")
        if self.crowd_size is not None and (isinstance(self.crowd_size, bool)
                                            or not isinstance(self.crowd_size, (int, np.integer))
                                            or not 2 <= self.crowd_size <= 60):
            raise _bad(f"crowd_size must be None or an integer from 2 to 60, got {self.crowd_size!r}")
        if not isinstance(self.subjects_together, (bool, np.bool_)):
            raise _bad(f"subjects_together must be True or False, got {self.subjects_together!r}")
        if self.calibration_pairs is not None and (isinstance(self.calibration_pairs, bool)
                                                   or int(self.calibration_pairs) < 20):
            raise _bad(f"calibration_pairs must be None or an integer ≥ 20 (2 per fold), got {self.calibration_pairs!r}")

    def _normalise_detector_options(self) -> None:
        options = self.detector_options
        if options is not None and not isinstance(options, Mapping):
            raise _bad(f"detector_options must be a mapping of option names to values (or None), got {options!r}")
        object.__setattr__(self, "detector_options", None if options is None else dict(options))

    @property
    def detector_settings(self) -> dict[str, Any]:
        """The options the run builds its detector with: ``detector_options``, else the crowd runs' own."""
        if self.detector_options is not None:
            return dict(self.detector_options)
        return dict(CROWD_DETECTOR_OPTIONS.get(self.detector, {}))

    def _check_names(self) -> None:
        from crowdkit.crowd.cast import check_matrix
        from crowdkit.crowd.track import TRACK_RULES
        from crowdkit.engine.match import check_metric

        try:
            check_matrix(self.matrix)
        except ConfigError as error:
            raise _bad(str(error)) from None
        try:
            check_metric(self.metric)
        except ConfigError as error:
            raise _bad(str(error)) from None
        if self.matching_rule not in MATCHING_RULES:
            raise _bad(f"unknown matching_rule {self.matching_rule!r}; choose one of {', '.join(MATCHING_RULES)}")
        if self.track_rule not in TRACK_RULES:
            raise _bad(f"unknown track_rule {self.track_rule!r}; choose one of {', '.join(TRACK_RULES)}")

    @property
    def rules(self) -> tuple[str, ...]:
        """The validation rules this run reports."""
        return ("study", "iou") if self.matching_rule == "both" else (self.matching_rule,)

    @property
    def main_rule(self) -> str:
        """The rule figures show when they show one: the corrected one when both are reported."""
        return self.rules[-1]

    @property
    def simulated(self) -> bool:
        return self.video is None

    @classmethod
    def from_namespace(cls, namespace: Mapping[str, Any]) -> "CrowdRunParams":
        """From a notebook's ``globals()`` or a plan's parameters: the names it knows, the rest ignored.

        Examples
        --------
        >>> CrowdRunParams.from_namespace({"member": "Colin_Powell", "challenge": "normal", "run_dir": None}).seed
        0
        """
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in namespace.items() if k in known})

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["query_photos"] = list(self.query_photos) if self.query_photos is not None else None
        return values

    def to_frame(self):
        """The parameters as a one-column table (``value``) for the run page."""
        import pandas as pd

        return pd.Series(self.to_dict(), name="value").to_frame()


def uses_study_threshold(params: CrowdRunParams, embedder: Any) -> bool:
    """Whether the study's own 0.65 applies: ArcFace with cosine distance."""
    return embedder.name == "arcface" and params.metric == "cosine"


def study_rule_threshold(params: CrowdRunParams, embedder: Any) -> float:
    """The threshold the study's rule gives this model: 0.65 for ArcFace + cosine, else the model's deepface default."""
    from crowdkit.engine.backends import default_threshold

    return STUDY_THRESHOLD if uses_study_threshold(params, embedder) else default_threshold(embedder, params.metric)


def calibrate_for_run(params: CrowdRunParams, detector: Any, embedder: Any, *, progress: bool = False):
    """The LFW calibration this run decides with (:class:`~crowdkit.engine.calibration.Calibration`), or None.

    None when a threshold is given, when the study's 0.65 applies (ArcFace + cosine) or
    when ``calibration_pairs`` is None.
    """
    from crowdkit.engine.calibration import calibrate_threshold

    if params.threshold is not None or uses_study_threshold(params, embedder) or params.calibration_pairs is None:
        return None
    return calibrate_threshold(model=embedder, metric=params.metric, detector=detector,
                               pairs=int(params.calibration_pairs), progress=progress)


def resolve_threshold(params: CrowdRunParams, embedder: Any, calibration: Any = None) -> tuple[float, str]:
    """(threshold, where it comes from) for ``params``, the built embedder and its calibration (if any)."""
    if params.threshold is not None:
        return float(params.threshold), "given"
    if uses_study_threshold(params, embedder):
        return STUDY_THRESHOLD, "the study's 0.65 (cosine; tuned for ArcFace)"
    if calibration is not None:
        return float(calibration.threshold), f"calibrated on LFW View 2: {calibration.describe()}"
    value = study_rule_threshold(params, embedder)
    return value, f"{embedder.name}'s own default for {params.metric}"
