"""hpc_rnn: a word-level LSTM that learns to write recipes, built to run on a Slurm cluster."""
