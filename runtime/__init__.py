"""The nasc runtime: search strategies, training, data, run directories and the command line."""
