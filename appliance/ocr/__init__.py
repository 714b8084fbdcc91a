"""Local Vietnamese OCR: detection, orientation and recognition on onnxruntime.

Pure: images in, frozen dataclasses out; no database, no network, nothing
downloaded at run time.
"""
