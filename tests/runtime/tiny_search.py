"""The smallest real search the runtime tests run: IS-DARTS-ready flags for NB201 at C=4, N=1
on 64 embedded digits, 3 epochs with shrink steps after epochs 1 and 2. Tests add the space,
the seed and the run folder."""

TINY_SEARCH = [
    "--data", "digits", "--subset", "64", "-D", "C=4", "-D", "N=1", "--epochs", "3",
    "--shrink-steps", "2", "--shrink-interval", "1", "--batch-size", "16",
    "--measure-samples", "16", "--quiet",
]  # fmt: skip
