"""The benchmark's pure parts: its LFW gallery and its report (the timing itself is `crowdkit bench find`)."""
from __future__ import annotations

import re

from crowdkit.bench import FindBenchmark, build_lfw_gallery
from crowdkit.io import list_images, read_image


def test_lfw_gallery_keeps_the_query_photos_out(tmp_path, lfw_dir):
    bench = build_lfw_gallery(tmp_path, faces=12)
    files = list_images(bench.folder)
    assert len(files) == bench.images == 12
    assert read_image(files[0]).shape == (150, 150, 3)  # the central 150 px of a 250 px deep-funneled image
    names = {p.name for p in files}
    assert bench.query_cold.name not in names and not {q.name for q in bench.queries_warm} & names
    assert len(bench.queries_warm) == 3
    assert any(p.parent.name == bench.identity for p in files)
    assert build_lfw_gallery(tmp_path, faces=12) == bench  # reused, not rewritten


def test_report_ends_with_the_summary_line():
    result = FindBenchmark(
        images=1000, faces_crowdkit=990, faces_deepface=1000, detector="opencv",
        deepface_cold_s=250.0, deepface_warm_s=2.0, crowdkit_cold_s=80.0, crowdkit_warm_s=0.15,
        bare_inference_s=130.0, cores_used=2, max_abs_delta_distance=1e-7, agreement=0.999, threshold=0.07,
    )
    last = result.report().splitlines()[-1]
    assert re.fullmatch(r"speedup_cold=\d+\.\d\d speedup_warm=\d+\.\d\d agreement=\d\.\d{4}", last)
    assert last == "speedup_cold=3.12 speedup_warm=13.33 agreement=0.9990"
    assert result.cold_over_limit == 80.0 / 65.0
