"""The interchange: schedules tasks from the endpoint onto managers over ZeroMQ."""
