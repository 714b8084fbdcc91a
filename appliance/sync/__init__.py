"""Store-and-forward to the central office: outbox rows to MQTT, signed acks back.

Wiring only; see wire.py (format and the bounded decoder every consumer uses),
acksig.py (Ed25519 signatures on acks), publisher.py (`appliance sync`), client.py
(one paho connection), commands.py (CLI entry point). The receiver is appliance.central.
"""
