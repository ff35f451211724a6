"""The benchmark, `python -m hpc_rnn.bench` (its docstring, in __main__.py, says what it does).

    __main__.py          the command: which figures, in which order; bench.json/.md/.png
    harness.py           sizes, Stats and Figure, timing (in a fresh process too), commands run
                         until a condition, the dev corpus preprocessed once
    train_throughput.py  one module per figure, each with run(ctx) -> its figures
    peer_throughput.py
    input_pipeline.py
    generation.py
    data_format.py       (a record, no figure)
    preprocess.py        preprocess and preprocess_memory
    data_parallel.py
    time_to_quality.py
    report.py            the table and the plot

How it measures and what the figures were: docs/benchmarks.md.
"""
