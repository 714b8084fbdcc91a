"""SANE scanners: discovery, identity, options, page-by-page batches, typed faults.

- `device`: the only module that calls python-sane: listing, opening, presets applied
  as SANE options (geometry last), pages read on a watched thread (progress, read
  timeouts), cancel at page boundaries, duplex.
- `identity`: `ScannerIdentity`, what the configuration remembers (vendor, model,
  serial) instead of a SANE name that changes on a replug.
- `session`: `ScannerSession`, one scanner for the life of the worker, re-found by
  identity after a replug or an I/O fault.
- `settings`: `ScanSettings` and the one-tap `PRESETS`, as data.
- `errors`: every SANE status as a typed error with a message key.
- `sane_env`: the appliance's own SANE_CONFIG_DIR (only the backends it uses).
- `commands`: `appliance scanner list` / `scanner test` for technicians.
The eSCL emulator that stands in for a network scanner is `appliance.demo.escl_emulator`.
"""
