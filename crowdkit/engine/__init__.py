"""The face engine: detect → align → embed → match, over photos, folders and videos.
Built on :mod:`crowdkit.common`; knows nothing of either study."""
