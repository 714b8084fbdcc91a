"""What is not on the device path: the eSCL scanner emulator, the synthetic pages it
serves, and the `appliance run` supervisor that starts everything for a demo."""
