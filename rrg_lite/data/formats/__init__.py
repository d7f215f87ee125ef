"""Readers that turn a dataset folder (real or written by the world) into :class:`~rrg_lite.data.manifest.StudyRecord`
lists: :mod:`.ctrate` (CT-RATE + RadGenome-ChestCT), :mod:`.amosmm`, :mod:`.mimic`, :mod:`.petct`."""
