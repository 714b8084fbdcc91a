"""The broker and service fixtures shared by the device and central sync tests."""

from tests.helpers.sync_rig import broker, brokers, services

__all__ = ["broker", "brokers", "services"]
