"""The central office's reference receiver and its own store. It shares the wire
format with `appliance.sync` and nothing of the device's schema."""
