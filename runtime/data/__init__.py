"""Data: datasets as tensors (the embedded digits, CIFAR, image folders) and their batches."""
