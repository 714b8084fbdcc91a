"""`appliance provision`: setting up a device offline, one re-runnable step at a time.

A field technician with no developer at hand gives the device its identity, makes its
key and CSR on the device, installs the certificate the CA signed, tests the scanner,
the models and the broker, and enrols the officers; each step records its verdict
and `appliance provision report` shows them all with the next step (commands.py).
"""
