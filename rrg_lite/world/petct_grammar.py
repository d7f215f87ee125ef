"""The phrases of the world's PET/CT reports beyond :mod:`rrg_lite.world.grammar`: lesion types, the joint impression,
and a Vietnamese rendering with ViMed-PET's section keys.

Everything here is data (no imports from the world), so the report writer (:mod:`rrg_lite.world.report`), the
facts and crops (:mod:`rrg_lite.world.petct`) and the fact parser (:mod:`rrg_lite.metrics.petct_facts`) read one
table. The Vietnamese strings are written precomposed and re-normalised to NFC wherever text is produced
(:func:`nfc`): "ổ" typed as "o" + combining marks and as one code point must compare equal.

Lesion *types* (the "T" of ViMed-PET's F1-T / F1-TP / F1-TF / F1-TPF) are coarser than the world's kinds: an
enlarged mediastinal node, a pelvic node and a normal-size hot node are all a ``lymph_node``; liver and renal
cysts are a ``cyst``. Positions (the "P") are the world's location words (:data:`LOCATIONS`).
"""
from __future__ import annotations

import unicodedata

#: World kind → lesion type (only PET-relevant focal lesions; other findings are not lesion facts).
LESION_TYPE: dict[str, str] = {
    "lung_nodule": "lung_nodule", "thyroid_nodule": "thyroid_nodule", "breast_nodule": "breast_mass",
    "lymphadenopathy": "lymph_node", "pelvic_lymphadenopathy": "lymph_node", "normal_size_node": "lymph_node",
    "consolidation": "consolidation", "bone_lesion": "bone_lesion", "liver_lesion": "liver_lesion",
    "liver_cyst": "cyst", "renal_cyst": "cyst",
}
LESION_TYPES: tuple[str, ...] = ("lung_nodule", "thyroid_nodule", "breast_mass", "lymph_node", "consolidation",
                                 "bone_lesion", "liver_lesion", "cyst")

_LOBES = ("right upper lobe", "right middle lobe", "right lower lobe", "left upper lobe", "left lower lobe")
_STATIONS = ("right paratracheal", "subcarinal", "prevascular", "left hilar", "right hilar")
#: Every position a lesion type takes in the world (the parser's vocabulary; a test checks it is complete).
LOCATIONS: dict[str, tuple[str, ...]] = {
    "lung_nodule": _LOBES, "consolidation": _LOBES,
    "thyroid_nodule": ("right thyroid lobe", "left thyroid lobe"),
    "breast_mass": ("right breast", "left breast"),
    "lymph_node": _STATIONS + ("right supraclavicular", "left supraclavicular", "right external iliac",
                               "left external iliac"),
    "bone_lesion": ("thoracic vertebral body",),
    "liver_lesion": ("right hepatic lobe", "left hepatic lobe"),
    "cyst": ("right hepatic lobe", "left hepatic lobe", "right kidney", "left kidney"),
}

#: The CT noun of the PET-only kind (the other kinds' nouns are in :data:`rrg_lite.world.grammar.CT_NOUN`).
CT_NOUN_EXTRA: dict[str, str] = {"normal_size_node": "{loc} lymph node"}

#: Lesion type → noun with its position, as PET sentences and the impression write it.
TYPE_NOUN: dict[str, dict[str, str]] = {
    "en": {"lung_nodule": "pulmonary nodule in the {loc}", "thyroid_nodule": "nodule in the {loc}",
           "breast_mass": "mass in the {loc}", "lymph_node": "lymph node at the {loc} station",
           "consolidation": "consolidation in the {loc}", "bone_lesion": "bone lesion in the {loc}",
           "liver_lesion": "liver lesion in the {loc}", "cyst": "cyst in the {loc}"},
    "vi": {"lung_nodule": "nốt phổi ở {loc}", "thyroid_nodule": "nốt ở {loc}", "breast_mass": "khối ở {loc}",
           "lymph_node": "hạch {loc}", "consolidation": "đông đặc ở {loc}", "bone_lesion": "tổn thương xương ở {loc}",
           "liver_lesion": "tổn thương ở {loc}", "cyst": "nang ở {loc}"},
}

#: English position → Vietnamese.
LOCATION_VI: dict[str, str] = {
    "right upper lobe": "thùy trên phổi phải", "right middle lobe": "thùy giữa phổi phải",
    "right lower lobe": "thùy dưới phổi phải", "left upper lobe": "thùy trên phổi trái",
    "left lower lobe": "thùy dưới phổi trái", "right thyroid lobe": "thùy phải tuyến giáp",
    "left thyroid lobe": "thùy trái tuyến giáp", "right breast": "vú phải", "left breast": "vú trái",
    "right paratracheal": "cạnh khí quản phải", "subcarinal": "dưới carina", "prevascular": "trước mạch máu",
    "left hilar": "rốn phổi trái", "right hilar": "rốn phổi phải", "right supraclavicular": "thượng đòn phải",
    "left supraclavicular": "thượng đòn trái", "right external iliac": "chậu ngoài phải",
    "left external iliac": "chậu ngoài trái", "thoracic vertebral body": "thân đốt sống ngực",
    "right hepatic lobe": "thùy gan phải", "left hepatic lobe": "thùy gan trái", "right kidney": "thận phải",
    "left kidney": "thận trái",
}

# ---------------------------------------------------------------------------------------------------------------
# The joint impression: CT size + PET uptake → a suspicion grade and its wording
# ---------------------------------------------------------------------------------------------------------------
#: Grades, from the rule in :func:`rrg_lite.world.petct.suspicion_grade`; the first three read as malignant.
GRADES: tuple[str, ...] = ("high", "nodal", "moderate", "low", "cyst")
MALIGNANT_GRADES = frozenset({"high", "nodal", "moderate"})
#: A lesion under this size (mm) is small; a lymph node under it is of normal size (short axis < 10 mm).
SMALL_MM = 10.0

IMPRESSION: dict[str, dict[str, str]] = {
    "en": {"high": "{Size} {noun} with an SUVmax of {suv}: highly suspicious for malignancy.",
           "nodal": "{Size} {noun}, normal in size on CT but hypermetabolic (SUVmax {suv}): suspicious for "
                    "metastatic involvement.",
           "moderate": "{Size} {noun} with an SUVmax of {suv}: suspicious for malignancy despite its small size.",
           "low": "{Size} {noun} without increased FDG uptake: likely benign.",
           "cyst": "{Size} {noun} without FDG uptake: simple cyst, benign.",
           "none": "No hypermetabolic malignancy is identified."},
    "vi": {"high": "{Noun} kích thước {size}, SUVmax {suv}: nghi ngờ ác tính cao.",
           "nodal": "{Noun} kích thước {size}, kích thước bình thường trên CT nhưng tăng chuyển hóa (SUVmax {suv}): "
                    "nghi ngờ di căn hạch.",
           "moderate": "{Noun} kích thước {size}, SUVmax {suv}: nghi ngờ ác tính dù kích thước nhỏ.",
           "low": "{Noun} kích thước {size}, không tăng hấp thu FDG: nhiều khả năng lành tính.",
           "cyst": "{Noun} kích thước {size}, không hấp thu FDG: nang đơn thuần, lành tính.",
           "none": "Không thấy tổn thương tăng chuyển hóa nghi ác tính."},
}

# ---------------------------------------------------------------------------------------------------------------
# Vietnamese report (ViMed-PET's JSON keys)
# ---------------------------------------------------------------------------------------------------------------
#: ViMed-PET's report sections; bone lesions go to the musculoskeletal one, as in the dataset's JSON.
SECTION_VI: dict[str, str] = {"head_neck": "Đầu - cổ", "chest": "Lồng ngực", "abdomen_pelvis": "Ổ bụng - khung chậu",
                              "musculoskeletal": "Hệ cơ - xương"}
CONCLUSION_VI = "Kết luận"
PET_VI = {"hot": "{Noun} tăng hấp thu FDG, SUVmax {suv}.", "cold": "{Noun} không tăng hấp thu FDG."}
CT_VI = "{Noun} kích thước {size}."
PHYSIOLOGICAL_VI = "Hấp thu FDG sinh lý ở {organs}."
ORGAN_VI = {"brain": "não", "myocardium": "cơ tim", "kidneys": "thận", "urinary bladder": "bàng quang"}
NORMAL_VI = {"head_neck": "Không thấy ổ tăng chuyển hóa FDG bất thường vùng đầu - cổ.",
             "chest": "Không thấy ổ tăng chuyển hóa FDG bất thường vùng lồng ngực.",
             "abdomen_pelvis": "Không thấy ổ tăng chuyển hóa FDG bất thường vùng ổ bụng - khung chậu.",
             "musculoskeletal": "Không thấy tổn thương xương bất thường."}


def nfc(text: str) -> str:
    """Unicode NFC (composed) form: the one spelling every Vietnamese string in the package is compared in."""
    return unicodedata.normalize("NFC", text)


def cap(text: str) -> str:
    """Upper-case the first character (works for "đông" → "Đông")."""
    return text[:1].upper() + text[1:] if text else text


def suspicion_grade(kind: str, size_mm: float | None, hot: bool) -> str:
    """The world's reading rule, CT size + PET uptake → grade (:data:`GRADES`).

    A cyst is benign on CT alone. Otherwise uptake decides malignancy (the benign twins look the same on CT) and
    size decides the wording: hot and ≥ 10 mm → "high"; a hot lymph node under 10 mm → "nodal" (normal size on
    CT, metastatic on PET); any other hot lesion under 10 mm → "moderate"; not hot → "low".
    """
    if kind in ("liver_cyst", "renal_cyst"):
        return "cyst"
    if not hot:
        return "low"
    small = size_mm is not None and size_mm < SMALL_MM
    if small and LESION_TYPE.get(kind) == "lymph_node":
        return "nodal"
    return "moderate" if small else "high"


def lesion_noun(kind: str, location: str, language: str = "en") -> str:
    """The noun phrase of a lesion with its position, e.g. ("lung_nodule", "left upper lobe") →
    "pulmonary nodule in the left upper lobe" / "nốt phổi ở thùy trên phổi trái"."""
    if language not in TYPE_NOUN:
        raise ValueError(f"lesion_noun: language must be one of {sorted(TYPE_NOUN)}, got {language!r}")
    if kind not in LESION_TYPE:
        raise ValueError(f"lesion_noun: {kind!r} is not a PET/CT lesion kind ({sorted(LESION_TYPE)})")
    loc = LOCATION_VI.get(location, location) if language == "vi" else location
    return nfc(TYPE_NOUN[language][LESION_TYPE[kind]].format(loc=loc))
