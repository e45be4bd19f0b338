"""The device in the loop: run and bench bundles on a Pi or a Jetson over the user's own OpenSSH.

  payload.py   the device half as one zip (built and cached here, sent once per version)
  agent.py     what runs on the device: the Python API behind a framed stdin/stdout protocol
  framing.py   that protocol (both sides)
  facts.py     what a device is: arch, CPU, memory, OS, Python, runtimes (device side)
  compat.py    package combinations refused up front (tflite-runtime with numpy 2)
  ssh.py       the transport: ssh subprocesses, one multiplexed connection per device
  remote_run.py  run/bench on a host: send what is missing, run, bring the report and files back
  device.py    device info (with the matching target profile) and device setup

Only agent.py, framing.py, facts.py and compat.py ship to devices.
"""
