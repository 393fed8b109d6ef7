"""crowdkit: face detection, alignment, embedding and evaluation for two face-recognition studies.

Notebooks import what they need from the stage modules, e.g.::

    from crowdkit import detect, embed, match
"""
__version__ = "0.1.0"
