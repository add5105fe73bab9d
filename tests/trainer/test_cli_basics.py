import pytest

from trainer.cli import build_parser, command, main


def test_help_without_command_returns_zero(capsys):
    assert main([]) == 0
    assert "COMMAND" in capsys.readouterr().out


def test_duplicate_command_is_refused():
    with pytest.raises(ValueError, match="defined twice"):
        command("version", "dup", lambda p: None)(lambda a: 0)


def test_parser_lists_version():
    assert "version" in build_parser().format_help()
