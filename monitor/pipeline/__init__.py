"""Pure pipeline stages: functions of (input, state) -> output, no I/O. Both runtimes call them."""
