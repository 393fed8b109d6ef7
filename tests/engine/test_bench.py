"""The benchmark's pure parts: its LFW gallery and its report (the timing itself is `crowdkit bench find`)."""
from __future__ import annotations

import re

import numpy as np
import pytest

from crowdkit.common.io import list_images, read_image
from crowdkit.engine.bench import FindBenchmark
from crowdkit.engine.bench_gallery import build_lfw_gallery
from crowdkit.engine.manifest import read_manifest


def test_lfw_gallery_is_extracted_and_keeps_the_query_photos_out(tmp_path, lfw_dir, isolated_home):
    bench = build_lfw_gallery(tmp_path, faces=12)
    files = list_images(bench.folder)
    assert bench.photos == 12 and len(files) == bench.images >= 10  # one crop per Haar face
    assert bench.extract_s > 0
    rows = read_manifest(bench.folder)  # the extraction's manifest lies beside the crops
    assert sorted(str(bench.folder / r.file) for r in rows) == sorted(str(p) for p in files)
    assert all(r.detector == "opencv" for r in rows)
    assert max(read_image(f).shape[0] for f in files) < 250  # face crops, not whole photos
    assert read_image(bench.query_cold).shape == (150, 150, 3)  # the central 150 px of a 250 px photo
    stems = {p.stem.rsplit("_", 1)[0] for p in files}
    assert bench.query_cold.stem not in stems and not {q.stem for q in bench.queries_warm} & stems
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
    assert result.cold_over_limit == 80.0 / 130.0  # the bare inference already ran on every core


def test_report_prints_the_extraction_and_the_warm_floor():
    result = FindBenchmark(
        images=990, faces_crowdkit=990, faces_deepface=990, detector="opencv",
        deepface_cold_s=136.0, deepface_warm_s=0.28, crowdkit_cold_s=54.0, crowdkit_warm_s=0.12,
        bare_inference_s=52.0, cores_used=2, max_abs_delta_distance=1e-7, agreement=1.0, threshold=0.07,
        photos=1000, extract_s=40.0, floor_s=0.1, floor_detect_s=0.08, gflop_per_face=0.5, peak_gflops_per_core=100.0,
        peak_note="n",
    )
    report = result.report()
    assert "the new query photo's detection 0.080 s and one dlib forward pass on its chip 0.020 s, 0.100 s in all" in report
    assert "each step once per photo in turn, as a search runs them" in report
    assert "990 face crops extracted from 1000 LFW photos" in report
    assert re.search(r"extraction .* 40\.00 s", report)
    assert "best possible warm speedup = deepface warm / floor = 2.80x" in report
    assert result.best_warm_speedup == pytest.approx(2.8)
    assert "best possible cold speedup = deepface cold / bare = 2.62x" in report
    assert "crowdkit reaches 96% of it" in report
    assert result.gflops_per_core == pytest.approx(990 * 0.5 / 52.0 / 2)
    assert "4.8 GFLOP/s per core, 5% of the FMA peak 100.0 GFLOP/s" in report


def test_flops_of_dlibs_network_and_the_cores_peak():
    from crowdkit.common import weights
    from crowdkit.engine.bench_compute import fma_peak_gflops_per_core, forward_gflop
    from crowdkit.engine.dlib_resnet import load_dlib_resnet

    network = load_dlib_resnet(weights.require("dlib-resnet"), cache_dir=weights.crowdkit_weights_dir())
    assert 0.45 < forward_gflop(network, (1, 3, 150, 150)) < 0.55  # the 0.51 GFLOP per face
    info = "model name\t: Intel(R) Xeon(R) Processor @ 2.80GHz\nflags\t\t: fpu avx fma avx2\n"
    peak, note = fma_peak_gflops_per_core(info)
    assert peak == pytest.approx(2.8 * 2 * 8 * 2) and "AVX2" in note
    assert np.isnan(fma_peak_gflops_per_core("flags : fpu sse2\n")[0])
