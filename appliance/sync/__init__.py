"""Store-and-forward to the central office: outbox rows to MQTT, and the reference receiver.

Wiring only; see wire.py (format), publisher.py (`appliance sync`), receiver.py
(`appliance central`), commands.py (CLI entry points).
"""
