"""``crowdkit simulate``: render a uniform-appearance crowd scene (video, CVAT XML, query photos)."""
from __future__ import annotations

import json
from pathlib import Path

from crowdkit.crowd.scene import CHALLENGES


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "simulate", help="render a simulated drone video of a uniform-appearance crowd with exact CVAT ground truth")
    parser.add_argument("--member", required=True,
                        help="the person to find: an LFW identity, or a member of the study (Peter, Ahmed, Yousef, "
                             "Nawfal: the LFW identity playing them); any other name needs --stand-in")
    parser.add_argument("--challenge", required=True, choices=CHALLENGES)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True, help="scene folder to create")
    parser.add_argument("--frames", type=int, default=300, help="number of frames (default 300)")
    parser.add_argument("--people", type=int, default=None, help="crowd size (default: 12–20 from the seed)")
    parser.add_argument("--subject", default=None, help="LFW name of the person to find (default: from member+seed)")
    parser.add_argument("--face-opening", type=float, default=1.0, help="headdress opening size factor (default 1.0)")
    parser.add_argument("--jpeg-quality", type=int, default=None, help="JPEG round trip per frame at this quality")
    parser.add_argument("--stand-in", action="store_true",
                        help="allow a --member that names nobody: the subject is chosen from the name and --seed")
    parser.add_argument("--overwrite", action="store_true", help="replace a different scene already in --out")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(handler=_simulate)


def _simulate(args) -> int:
    from crowdkit.common.datasets import lfw_people
    from crowdkit.crowd.cast import person_to_find
    from crowdkit.crowd.scene import SceneSpec
    from crowdkit.crowd.simulate import generate_scene

    subject = args.subject or person_to_find(args.member, lfw_people(min_images=3), stand_in=args.stand_in)
    spec = SceneSpec(member=args.member, challenge=args.challenge, seed=args.seed, n_frames=args.frames,
                     n_people=args.people, subject=subject, face_opening=args.face_opening,
                     jpeg_quality=args.jpeg_quality)
    scene = generate_scene(spec, args.out, overwrite=args.overwrite)
    if subject is None and not args.json:
        print(f"stand-in: {args.member!r} names nobody; the scene's subject {scene.subject} was chosen from the "
              f"name and seed {args.seed}")
    if args.json:
        print(json.dumps({"folder": str(scene.folder), "video": str(scene.video),
                          "annotations": str(scene.annotations_xml), "subject": scene.subject,
                          "query_photos": {k: str(v) for k, v in scene.query_photos.items()},
                          "manifest": str(scene.manifest), "people": len(scene.people)}))
    else:
        print(f"scene: {scene.folder}")
        print(f"  subject: {scene.subject} (query photos: {', '.join(sorted(scene.query_photos))})")
        print(f"  people: {len(scene.people)}; video: {scene.video.name}; annotations: {scene.annotations_xml.name}")
    return 0
