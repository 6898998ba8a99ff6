"""Shell completion scripts generated from the argparse tree, so they never drift from the parser."""

from __future__ import annotations

import argparse
import shlex

FILE_ARGUMENTS = frozenset({"paths", "inputs_file", "config"})


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The parser's subcommands by name (argparse keeps them on its _SubParsersAction)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _options(parser: argparse.ArgumentParser) -> tuple[list[str], list[str]]:
    """(every visible option string, the ones that take a value)."""
    words: list[str] = []
    valued: list[str] = []
    for action in parser._actions:
        if action.help == argparse.SUPPRESS or not action.option_strings:
            continue
        words.extend(action.option_strings)
        if action.nargs != 0:
            valued.extend(action.option_strings)
    return words, valued


def _cases(parser: argparse.ArgumentParser, path: str, cases: list[str], valued: set[str]) -> None:
    """One `case` arm per command path ("", "run", "flows apply", ...) listing what may follow."""
    options, takes_value = _options(parser)
    valued.update(takes_value)
    children = _subcommands(parser)
    choices = [
        choice
        for each in parser._actions
        if not each.option_strings and each.choices and not isinstance(each, argparse._SubParsersAction)
        for choice in each.choices
    ]
    files = any(action.dest in FILE_ARGUMENTS for action in parser._actions if not action.option_strings)
    words = shlex.quote(" ".join([*children, *choices]))
    positional = f'COMPREPLY=($(compgen -W {words} -- "$cur"))'
    if files and not children:
        positional += '; COMPREPLY+=($(compgen -f -- "$cur"))'
    body = (
        f'if [[ $cur == -* ]]; then COMPREPLY=($(compgen -W {shlex.quote(" ".join(options))} -- "$cur")); '
        f"else {positional}; fi"
    )
    cases.append(f"    {shlex.quote(path)}) {body} ;;")
    for name, child in children.items():
        _cases(child, f"{path} {name}".strip(), cases, valued)


def _option_values(parser: argparse.ArgumentParser) -> list[str]:
    """`case` arms completing the value of an option with fixed choices or a file."""
    arms: dict[str, str] = {}

    def visit(each: argparse.ArgumentParser) -> None:
        for action in each._actions:
            if not action.option_strings or action.help == argparse.SUPPRESS or action.nargs == 0:
                continue
            pattern = "|".join(action.option_strings)
            if action.choices:
                arms[pattern] = f'COMPREPLY=($(compgen -W {shlex.quote(" ".join(action.choices))} -- "$cur")); return'
            elif action.dest in FILE_ARGUMENTS:
                arms[pattern] = 'COMPREPLY=($(compgen -f -- "$cur")); return'
        for child in _subcommands(each).values():
            visit(child)

    visit(parser)
    return [f"    {pattern}) {body} ;;" for pattern, body in arms.items()]


def bash_script(parser: argparse.ArgumentParser) -> str:
    """A bash completion function for `prog` covering commands, sub-actions, options and choices."""
    prog = parser.prog
    cases: list[str] = []
    valued: set[str] = set()
    _cases(parser, "", cases, valued)
    function = f"_{prog.replace('-', '_')}_complete"
    lines = [
        f"# {prog} completion for bash, generated from its argument parser: source <({prog} completion bash)",
        f"{function}() {{",
        '    local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}" path="" word i skip=0',
        '    case "$prev" in',
        *_option_values(parser),
        "    esac",
        "    for ((i = 1; i < COMP_CWORD; i++)); do",
        '        word="${COMP_WORDS[i]}"',
        "        if ((skip)); then skip=0; continue; fi",
        '        case "$word" in',
        f"            {'|'.join(sorted(valued))}) skip=1 ;;",
        "            -*) ;;",
        f'            *) case ",{",".join(_paths(parser))}," in *",${{path:+$path }}$word,"*) '
        'path="${path:+$path }$word" ;; esac ;;',
        "        esac",
        "    done",
        '    case "$path" in',
        *cases,
        "    esac",
        "}",
        f"complete -F {function} {prog}",
    ]
    return "\n".join(lines) + "\n"


def _paths(parser: argparse.ArgumentParser, prefix: str = "") -> list[str]:
    """Every command path ("run", "flows", "flows apply", ...)."""
    paths: list[str] = []
    for name, child in _subcommands(parser).items():
        path = f"{prefix} {name}".strip()
        paths.append(path)
        paths.extend(_paths(child, path))
    return paths


def zsh_script(parser: argparse.ArgumentParser) -> str:
    """The bash function run through zsh's bashcompinit (zsh's own way to load bash completions)."""
    return (
        f"#compdef {parser.prog}\n"
        "autoload -U +X compinit && compinit\n"
        "autoload -U +X bashcompinit && bashcompinit\n" + bash_script(parser)
    )
