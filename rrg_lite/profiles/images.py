"""Chapter 1, "Radiology images in Python".

cpu:  a synthetic CT torso from the world generator plus pydicom's bundled real CT slice (``CT_small.dcm``).
full: a real CT volume of your own (e.g. one CT-RATE ``.nii.gz``) and, optionally, a folder of DICOM slices.
"""

REQUIRED = {"full": ("nifti_path",)}
PATHS = ("nifti_path", "dicom_path")

PROFILES = {
    "cpu": {
        "nifti_path": None,          # None → a synthetic CT written to a temporary NIfTI file
        "dicom_path": None,          # None → pydicom's bundled CT_small.dcm; or a file, or a folder (one series)
        "n_slices": 40,              # depth of the synthetic CT
        "target_spacing": [2.0, 2.0, 2.0],  # mm, for the resampling section
        "window": "lung",            # the viewer's default window
        "seed": 0,
    },
    "full": {
        "nifti_path": None,          # required: e.g. /data/CT-RATE/dataset/valid/valid_1/valid_1_a/valid_1_a_1.nii.gz
        "dicom_path": None,
        "n_slices": 40,
        "target_spacing": [1.5, 1.5, 3.0],
        "window": "lung",
        "seed": 0,
    },
}
