"""Reading, transforming and batching radiology data: NIfTI/DICOM I/O, transforms, manifests, datasets."""
