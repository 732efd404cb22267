"""`rtsctl completion bash|zsh|fish`: a completion script generated from the parser itself.

Generated, not hand-kept, so a new verb or flag completes the day it is added; static, so pressing TAB never
starts Python (argcomplete's approach would, on every key press). zsh runs the bash function through bashcompinit.
"""

from __future__ import annotations

import argparse
import shlex
from dataclasses import dataclass, field


@dataclass
class Command:
    """One verb (or `keys regenerate`): its flags, which flags take a fixed choice, which take a value."""

    path: tuple[str, ...]
    help: str
    flags: dict[str, str] = field(default_factory=dict)          # option string -> help
    choices: dict[str, list[str]] = field(default_factory=dict)  # option string -> choices
    valued: set[str] = field(default_factory=set)               # options that take a value (file, name, ...)
    words: list[str] = field(default_factory=list)              # positional choices (a shell, an output NAME)
    files: bool = False                                         # a positional takes a file (MANIFEST)


def _subparsers(parser: argparse.ArgumentParser):
    for action in parser._actions:  # noqa: SLF001 - argparse has no public walk
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            helps = {a.dest: a.help or "" for a in action._choices_actions}  # noqa: SLF001
            for name, sub in action.choices.items():
                yield name, sub, helps.get(name, "")


def commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> list[Command]:
    out: list[Command] = []
    for name, sub, help_text in _subparsers(parser):
        nested = list(_subparsers(sub))
        cmd = Command(path + (name,), help_text)
        for action in sub._actions:  # noqa: SLF001
            if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
                continue
            if not action.option_strings:
                cmd.words += [str(c) for c in action.choices or ()]
                cmd.files = cmd.files or not action.choices
                continue
            for option in action.option_strings:
                cmd.flags[option] = (action.help or "").replace("%%", "%")
                if action.choices:
                    cmd.choices[option] = [str(c) for c in action.choices]
                elif action.nargs != 0:
                    cmd.valued.add(option)
        if name == "bench":
            cmd.words.append("merge")
        out.append(cmd)
        if nested:
            out += commands(sub, path + (name,))
    return out


def bash(parser: argparse.ArgumentParser) -> str:
    cmds = commands(parser)
    top = " ".join(c.path[0] for c in cmds if len(c.path) == 1)
    nested = {c.path[0]: " ".join(x.path[1] for x in cmds if len(x.path) == 2 and x.path[0] == c.path[0])
              for c in cmds if len(c.path) == 1}
    cases, prev_cases = [], []
    for c in cmds:
        key = " ".join(c.path)
        words = c.words if len(c.path) == 2 or not nested[c.path[0]] else nested[c.path[0]].split()
        files = c.files and (len(c.path) == 2 or not nested[c.path[0]])
        cases.append(f"    {shlex.quote(key)}) opts={shlex.quote(' '.join(sorted(c.flags)))}; "
                     f"words={shlex.quote(' '.join(words))}; files={int(files)};;")
        for option, choices in c.choices.items():
            prev_cases.append(f"    {shlex.quote(key + ':' + option)}) "
                              f"COMPREPLY=($(compgen -W {shlex.quote(' '.join(choices))} -- \"$cur\")); return;;")
        if c.valued:  # a value: a file most of the time, and a file name never hurts
            patterns = "|".join(shlex.quote(key + ":" + option) for option in sorted(c.valued))
            prev_cases.append(f"    {patterns}) COMPREPLY=($(compgen -f -- \"$cur\")); return;;")
    return "\n".join([
        "# rtsctl completion for bash: source <(rtsctl completion bash)",
        "_rtsctl() {",
        '  local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}"',
        '  local cmd="" sub="" w opts="" words="" files=1',
        '  for w in "${COMP_WORDS[@]:1:COMP_CWORD-1}"; do',
        '    case "$w" in -*) ;; *)',
        '      if [ -z "$cmd" ]; then cmd="$w"',
        '      elif [ -z "$sub" ]; then case "$cmd" in ' + " ".join(f"{k})" + ' sub="$w";;'
                                                              for k, v in nested.items() if v) + " esac",
        '      fi;; esac',
        "  done",
        '  if [ -z "$cmd" ]; then',
        f'    COMPREPLY=($(compgen -W {shlex.quote(top + " --version --help")} -- "$cur")); return',
        "  fi",
        '  local key="$cmd"; [ -n "$sub" ] && key="$cmd $sub"',
        '  case "$key:$prev" in',
        *prev_cases,
        "  esac",
        '  case "$key" in',
        *cases,
        "  esac",
        '  if [[ "$cur" == -* ]]; then',
        '    COMPREPLY=($(compgen -W "$opts --debug" -- "$cur"))',
        '  elif [ "$files" = 1 ]; then',
        '    COMPREPLY=($(compgen -W "$words" -- "$cur") $(compgen -f -- "$cur"))',
        "  else",
        '    COMPREPLY=($(compgen -W "$words" -- "$cur"))',
        "  fi",
        "}",
        "complete -o filenames -o bashdefault -F _rtsctl rtsctl",
        "",
    ])


def zsh(parser: argparse.ArgumentParser) -> str:
    return "\n".join(["# rtsctl completion for zsh: source <(rtsctl completion zsh)",
                      "autoload -U +X bashcompinit && bashcompinit", bash(parser)])


def _fish_quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def fish(parser: argparse.ArgumentParser) -> str:
    cmds = commands(parser)
    tops = [c for c in cmds if len(c.path) == 1]
    lines = ["# rtsctl completion for fish: rtsctl completion fish > ~/.config/fish/completions/rtsctl.fish",
             "complete -c rtsctl -f"]
    verbs = " ".join(c.path[0] for c in tops)
    for c in tops:
        lines.append(f"complete -c rtsctl -n '__fish_use_subcommand' -a {c.path[0]} -d {_fish_quote(c.help)}")
    for c in cmds:
        if len(c.path) == 2:
            cond = f"__fish_seen_subcommand_from {c.path[0]}; and not __fish_seen_subcommand_from {c.path[1]}"
            lines.append(f"complete -c rtsctl -n {_fish_quote(cond)} -a {c.path[1]} -d {_fish_quote(c.help)}")
        seen = f"__fish_seen_subcommand_from {c.path[-1]}"
        if len(c.path) == 1:
            lines.append(f"complete -c rtsctl -n {_fish_quote(seen)} -F")
            if c.words:
                lines.append(f"complete -c rtsctl -n {_fish_quote(seen)} -a {_fish_quote(' '.join(c.words))}")
        for option, help_text in sorted(c.flags.items()):
            spec = f"-l {option[2:]}" if option.startswith("--") else f"-s {option[1:]}"
            extra = ""
            if option in c.choices:
                extra = f" -x -a {_fish_quote(' '.join(c.choices[option]))}"
            elif option in c.valued:
                extra = " -r -F"
            lines.append(f"complete -c rtsctl -n {_fish_quote(seen)} {spec}{extra} -d {_fish_quote(help_text)}")
    lines.append(f"complete -c rtsctl -n 'not __fish_seen_subcommand_from {verbs}' -l version -d 'print the version'")
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    from rtsctl.cli import build_parser

    print({"bash": bash, "zsh": zsh, "fish": fish}[args.shell](build_parser()), end="")
    return 0
