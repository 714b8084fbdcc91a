"""SANE scanners: discovery, identity, options, page-by-page batches, typed faults, and
the eSCL emulator that stands in for a network scanner."""
