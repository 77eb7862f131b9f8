"""Container runtimes: the command line each one takes to run a command in an image."""
