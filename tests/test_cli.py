"""What every command shares: --help that explains every flag, and one error line for mistakes."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from hpc_rnn import demo_corpus as demo_corpus_command
from hpc_rnn import evaluate, generate, preprocess, submit, train
from hpc_rnn.bench import __main__ as bench_command

COMMANDS = {
    "preprocess": preprocess.build_parser,
    "train": train.build_parser,
    "generate": generate.build_parser,
    "evaluate": evaluate.build_parser,
    "submit": submit.build_parser,
    "demo_corpus": demo_corpus_command.build_parser,
    "bench": bench_command.build_parser,
}


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help_explains_every_flag_its_default_and_the_exit_codes(name: str) -> None:
    parser = COMMANDS[name]()
    for action in parser._actions:  # argparse keeps no public list of a parser's arguments
        if isinstance(action, argparse._HelpAction) or action.help == argparse.SUPPRESS:
            continue
        flag = "/".join(action.option_strings) or action.dest
        assert action.help and len(action.help.split()) >= 3, f"{name} {flag}: no help text"
        takes_value = action.option_strings and action.nargs != 0 and action.required is False
        if takes_value and action.default not in (None, [], argparse.SUPPRESS):
            assert "default" in action.help, f"{name} {flag}: the help does not give its default"
    text = parser.format_help()
    assert "exit codes:" in text and "  2  " in text
    assert f"python -m hpc_rnn.{name}" in text  # the usage examples of the module docstring


def test_a_run_can_start_from_an_earlier_runs_config_json_and_flags_win(tmp_path: Path) -> None:
    first = train.parse_config(["--data", "d", "--run", "r", "--hidden", "48", "--lr", "0.01"])
    saved = tmp_path / "config.json"
    saved.write_text(json.dumps({**train.config.to_dict(first)}))
    again = train.parse_config(["--config", str(saved), "--lr", "0.02"])
    assert (again.data, again.run, again.model.hidden) == ("d", "r", 48)
    assert again.lr == 0.02  # a flag wins over the file


def test_a_toml_config_applies_after_a_preset(tmp_path: Path) -> None:
    toml = tmp_path / "run.toml"
    toml.write_text('data = "d"\nrun = "r"\nepochs = 7\n[model]\nhidden = 64\n')
    cfg = train.parse_config(["--preset", "seed", "--config", str(toml)])
    assert (cfg.epochs, cfg.model.hidden, cfg.optimizer) == (7, 64, "sgd")


@pytest.mark.parametrize(
    "content, message",
    [("epochz = 3\n", "unknown settings epochz"), ("epochs = [\n", "not valid"), ("", "--data")],
)
def test_a_bad_config_file_is_one_error(
    tmp_path: Path, content: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    toml = tmp_path / "bad.toml"
    toml.write_text(content)
    assert train.main(["--config", str(toml), *(["--run", "r"] if content else [])]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err
