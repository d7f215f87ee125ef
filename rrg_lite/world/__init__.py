"""A seeded synthetic radiology world: patients with known ground truth, small enough for a laptop.

Generate in memory (study i depends only on ``(seed, i)``)::

    from rrg_lite.world.config import WorldConfig
    from rrg_lite.world.ct import generate_ct_cohort, generate_petct_cohort, iter_ct_cohort, make_ct_study
    from rrg_lite.world.xray import generate_xray_cohort, make_xray_study

    cts = generate_ct_cohort(100, seed=0)                    # chest-abdomen-pelvis CT, 64×64×(24–48)
    cts = generate_ct_cohort(100, seed=0, cfg=WorldConfig(scan_range="chest", p_prior_ct=0.3))
    pets = generate_petct_cohort(20, seed=0)                 # whole-body CT + co-registered SUV
    cxrs = generate_xray_cohort(200, seed=0)                 # frontal (+ lateral) 128×128, priors

CT study (:class:`rrg_lite.world.ct.CTStudy`), arrays (D, H, W) = (z head→feet, y front→back, x right→left):

* ``.study_id``, ``.patient_id``, ``.age``, ``.sex``, ``.scan_range``
* ``.ct`` float32 HU; ``.spacing`` (sz, sy, sx) mm; ``.affine`` NIfTI affine of the (x, y, z)-transposed array
* ``.pet`` float32 SUV or None; ``.physiological`` organs with physiological uptake
* ``.masks`` dict name → bool (D, H, W): the ten Reg2RG regions (``vocab.REGIONS``: "abdomen", "bone", "breast",
  "esophagus", "heart", "lung", "mediastinum", "pleura", "thyroid", "trachea and bronchie") and organs (``liver``,
  ``spleen``, ``kidney_left``, ``kidney_right``, ``gallbladder``, ``pancreas``, ``stomach``, ``aorta``, ``bladder``,
  ``lung_left``, ``lung_right``, ``brain``); ``.region_masks`` / ``.organ_masks`` separately; ``.labelmap`` fine labels
* ``.findings`` list of :class:`rrg_lite.world.findings.Finding` — ``kind``, ``label`` (CT-RATE name or None),
  ``region``, ``body_part``, ``organ``, ``location``, ``side``, ``size_mm``, ``center_mm``, ``severity``,
  ``hypermetabolic``, ``suv_max``, ``change``, ``prior_size_mm``; ``.finding_mask(id)``
* ``.report`` (:class:`rrg_lite.world.report.Report`): ``.findings`` and ``.impression`` text, ``.text()``,
  ``.region_reports`` {region: text}, ``.body_parts`` {chest/abdomen/pelvis: text}, ``.pet_ct_parts``
  {head_neck/chest/abdomen_pelvis: {"pet", "ct"}}, ``.sentences`` (each tagged, with its finding ids)
* ``.labels`` int64 (18,) in ``vocab.CT_RATE_LABELS`` order; ``.qa`` list of {question, answer, type, category}
* ``.boxes`` 3-D boxes [z0, y0, x0, z1, y1, x1] of findings, organs, regions; ``.prior`` earlier CTStudy or None

X-ray study (:class:`rrg_lite.world.xray.XRayStudy`):

* ``.study_id``, ``.subject_id``, ``.days`` (study day; the prior's is smaller)
* ``.frontal`` float32 (S, S) in [0, 1], ``.lateral`` same or None, ``.views`` {"frontal": "PA"|"AP",
  "lateral": "LATERAL"|"LL"}, ``.images`` {view: image}
* ``.findings`` (``.views`` says where each one is visible, ``.certainty`` definite/uncertain, ``.change``)
* ``.report`` sections indication / comparison / findings / impression; input-agnostic sentences are tagged
  (``Sentence.agnostic``) and ``report.text(include_agnostic=False)`` drops them
* ``.labels`` float32 (14,) CheXpert (1, 0, −1, NaN) in ``vocab.CHEXPERT_LABELS`` order
* ``.boxes`` [{label, kind: finding|organ|region, view, box: [x1, y1, x2, y2] pixels, finding_id}]
* ``.qa``, ``.prior`` (earlier XRayStudy of the same subject or None)

PET/CT (ViPET-VLM): :mod:`rrg_lite.world.petct` cuts a whole-body study into the three ViMed-PET regions
(head-neck, chest, abdomen-pelvis, overlapping slices; ``split_regions``), each with its lesion facts, PET and CT
report halves, QA and a dialogue, and renders reports in Vietnamese (``vietnamese_report``); its phrase tables are
:mod:`rrg_lite.world.petct_grammar`. Hard cases on the PET path only: CT-identical benign twins of malignant lesions,
normal-size hypermetabolic nodes, cold cysts.

Knobs and their defaults: :mod:`rrg_lite.world.config`. All phrasings: :mod:`rrg_lite.world.grammar`.
Writing the real datasets' formats: :mod:`rrg_lite.world.writers` (:func:`rrg_lite.world.build.build_datasets`
writes whole cohorts in parallel); reading them back: :mod:`rrg_lite.data.formats`. Consistency checks between
record, images, report and labels: :mod:`rrg_lite.world.checks`; dataset statistics: :mod:`rrg_lite.world.stats`.

Memory: ``.masks``, ``.region_masks``, ``.organ_masks`` and ``.boxes`` are computed from ``.labelmap`` on each
access (not stored), so a cohort of 500 CPU-size CTs stays around 0.5 GB; keep the dict if you need it twice.
"""
