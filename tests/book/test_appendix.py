"""The appendix's own parts: run times from the runner's sidecars, the browser check's screenshots."""
from __future__ import annotations

import json

import numpy as np
from PIL import Image

from crowdkit.book import appendix


def test_screenshots_say_how_to_get_them_then_show_them_in_order(tmp_path):
    note, images = appendix.screenshots(tmp_path)
    assert images == [] and "pytest tests/book/test_book.py" in note
    for name in ("book_run_page.png", "book_index.png"):
        Image.fromarray(np.full((20, 30, 3), 200, np.uint8)).save(tmp_path / name)
    note, images = appendix.screenshots(tmp_path, width=300)
    assert len(images) == 2 and images[0].width == 300
    assert "1. the book's first page; 2. a run page" in note and "UTC" in note


def test_run_times_read_every_sidecar_but_the_appendix_own(tmp_path):
    for plan, run, seconds in (("crowd", "peter-normal", 12.5), ("appendix", "reproducibility", 3.0)):
        folder = tmp_path / plan
        folder.mkdir(exist_ok=True)
        (folder / f"{run}.run.json").write_text(json.dumps({"plan": plan, "run": run, "status": "ran",
                                                            "profile": "quick", "seconds": seconds,
                                                            "content_hash": "a" * 64}))
    times = appendix.run_times(tmp_path)
    assert times["run"].tolist() == ["peter-normal"] and times["content hash"].iloc[0] == "a" * 12
    assert appendix.run_times_summary(times) == "1 notebook, 12 s of notebook time in all."
