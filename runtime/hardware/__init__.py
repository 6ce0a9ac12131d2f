"""What depends on the machine: devices, distributed ranks, memory estimates, latency tables."""
