"""Measurements, apart from the device path: OCR accuracy and speed against tesseract,
the int8 GEMM ceiling of this CPU, and the outbox drain against raw paho."""
