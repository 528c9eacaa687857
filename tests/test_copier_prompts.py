"""Answers typed at copier's prompts: an invalid one is refused with the validator's one-line
message and no traceback, the same prompt stays open, and the corrected answer is recorded.

The real `copier copy --trust` runs in a pseudo-terminal and is answered key by key, the way a
person answers it (standard library only: `os.openpty`, no pexpect). Copier prompts with
questionary/prompt_toolkit, so the output is full of ANSI escape sequences; they are stripped
before matching. Things to know when driving it:

- A free-text prompt is pre-filled with its default as editable text: typing appends to it.
  Ctrl-U (emacs "unix-line-discard") clears it first.
- A refused answer is shown in prompt_toolkit's bottom toolbar as
  `Validation error for question '<name>': <validator message>`; the prompt stays open.
- Keys must only be sent once a prompt is on screen: between prompts the terminal is back in
  cooked mode and the line discipline swallows editing keys such as Ctrl-U.
- prompt_toolkit asks the terminal for the cursor position (CSI 6n); like a real terminal we
  answer, otherwise it waits and prints a warning about CPR support.

Answers given with `--data` are covered by test_copier_questions.py.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import select
import signal
import struct
import subprocess
import termios
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from harness import ROOT, copier_questions, tool

ROWS, COLUMNS = 40, 80  # a common terminal: every validator message is read whole at this width
OVERALL_TIMEOUT = 60.0  # seconds for one whole interactive copy
CLEAR_LINE = "\x15"  # Ctrl-U
ENTER = "\r"
CURSOR_POSITION_REQUEST = b"\x1b[6n"

# CSI (colours, cursor movement, modes), OSC (titles), charset and other two-byte escapes.
ANSI = re.compile(
    r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[()][0-9A-Za-z]|[0-9=>@-Z\\^_])"
)


def strip_ansi(text: str) -> str:
    return ANSI.sub("", text)


class Terminal:
    """A command running in a pseudo-terminal of a fixed size, with expect/send helpers."""

    def __init__(self, argv: list[str], cwd: Path, *, timeout: float = OVERALL_TIMEOUT) -> None:
        self.deadline = time.monotonic() + timeout
        self.raw = b""
        self.position = 0  # how far `expect` has consumed the cleaned output
        self.answered_cpr = 0
        self.eof = False
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
        env = {**os.environ, "TERM": "xterm", "COLUMNS": str(COLUMNS), "LINES": str(ROWS)}
        env.pop("NO_COLOR", None)
        try:
            self.process = subprocess.Popen(
                argv,
                cwd=cwd,
                env=env,
                stdin=slave,
                stdout=slave,
                stderr=slave,
                start_new_session=True,  # its own session and process group, killed as one
                preexec_fn=_take_controlling_terminal,
            )
        except BaseException:
            os.close(master)
            raise
        finally:
            os.close(slave)
        self.master = master

    # -- output -----------------------------------------------------------------------------

    @property
    def output(self) -> str:
        return strip_ansi(self.raw.decode("utf-8", errors="replace"))

    @property
    def transcript(self) -> str:
        """The cleaned output for failure messages, without the toolbar's blank screen lines."""
        return re.sub(r"(?:[ \t]*\r?\n){3,}", "\n\n", self.output)

    def _remaining(self, timeout: float) -> float:
        return max(0.0, min(timeout, self.deadline - time.monotonic()))

    def _read(self, wait: float) -> None:
        """Read what is available within `wait` seconds; answer cursor-position requests."""
        if self.eof:
            return
        ready, _, _ = select.select([self.master], [], [], wait)
        if not ready:
            return
        try:
            chunk = os.read(self.master, 65536)
        except OSError:  # EIO: every process holding the terminal has exited
            chunk = b""
        if not chunk:
            self.eof = True
            return
        self.raw += chunk
        requests = self.raw.count(CURSOR_POSITION_REQUEST)
        while self.answered_cpr < requests:
            self.answered_cpr += 1
            self.send("\x1b[1;1R")

    def expect(self, text: str, timeout: float = 20.0) -> str:
        """Read until `text` shows up in the cleaned output after the last match; return the
        output from the last match to the end of this one."""
        end = time.monotonic() + self._remaining(timeout)
        while True:
            found = self.output.find(text, self.position)
            if found >= 0:
                seen = self.output[self.position : found + len(text)]
                self.position = found + len(text)
                return seen
            if self.eof or time.monotonic() >= end:
                state = "the process ended" if self.eof else f"timed out after {timeout:.0f}s"
                pytest.fail(f"{state} waiting for {text!r}; output so far:\n{self.transcript}")
            self._read(min(0.1, max(0.0, end - time.monotonic())))

    def expect_absent(self, text: str, seconds: float) -> None:
        """Read for `seconds` and fail if `text` appears after the last match."""
        end = time.monotonic() + self._remaining(seconds)
        while time.monotonic() < end and not self.eof:
            self._read(min(0.1, max(0.0, end - time.monotonic())))
        if text in self.output[self.position :]:
            pytest.fail(f"{text!r} appeared unexpectedly; output so far:\n{self.transcript}")

    # -- input ------------------------------------------------------------------------------

    def send(self, keys: str) -> None:
        data = keys.encode()
        while data:
            written = os.write(self.master, data)
            data = data[written:]

    # -- end --------------------------------------------------------------------------------

    def alive(self) -> bool:
        return self.process.poll() is None

    def wait(self) -> int:
        """Drain the output until the process exits; its exit code."""
        while not self.eof and time.monotonic() < self.deadline:
            self._read(0.1)
        try:
            return self.process.wait(timeout=self._remaining(OVERALL_TIMEOUT))
        except subprocess.TimeoutExpired:
            pytest.fail(f"the process did not exit in {OVERALL_TIMEOUT:.0f}s:\n{self.transcript}")

    def close(self) -> None:
        """Kill the process group if it still runs, reap the child, close the terminal."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        os.close(self.master)


def _take_controlling_terminal() -> None:
    # Runs in the child after setsid(): stdin is the pty's slave; make it the controlling
    # terminal, as a shell in a terminal window would have it.
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def asked_questions() -> list[tuple[str, str]]:
    """(name, prompt text) of each question copier asks, in copier.yml's order."""
    return [
        (name, str(spec.get("help") or name))
        for name, spec in copier_questions().items()
        if spec.get("when", True) is not False
    ]


@dataclass(frozen=True)
class Case:
    question: str
    bad: str
    message: str  # the validator's whole one-line message
    good: str
    recorded: dict[str, Any]  # what .copier-answers.yml must hold afterwards


CASES = [
    Case(
        "project_slug",
        "Bad_Slug",
        "e.g. my-service: a-z 0-9 -, 2-41",
        "good-slug",
        {"project_slug": "good-slug", "package_name": "good_slug"},
    ),
    Case(
        "package_name",
        "class",
        "e.g. my_service: not a keyword",
        "billing",
        {"package_name": "billing"},
    ),
    Case(
        "author_email",
        "nope",
        "e.g. team@example.com: not valid",
        "owners@example.org",
        {"author_email": "owners@example.org"},
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[f"{c.question}={c.bad}" for c in CASES])
def test_typed_invalid_answer_is_refused_and_asked_again(tmp_path: Path, case: Case) -> None:
    dest = tmp_path / "out"
    questions = asked_questions()
    names = [name for name, _ in questions]
    assert case.question in names, f"{case.question} is not asked: {names}"

    command = [tool("copier"), "copy", "--trust", "--vcs-ref", "HEAD", str(ROOT), str(dest)]
    term = Terminal(command, cwd=tmp_path)
    try:
        for index, (name, prompt) in enumerate(questions):
            term.expect(prompt)
            if name != case.question:
                term.send(ENTER)  # accept the default (pre-filled text or selected choice)
                continue

            # Clear the pre-filled default and type the invalid answer.
            term.send(CLEAR_LINE + case.bad + ENTER)
            term.expect(f"Validation error for question '{name}': {case.message}")
            assert "Traceback" not in term.output

            # Refused: the next question is not asked and copier keeps waiting at this one.
            following = questions[index + 1][1] if index + 1 < len(questions) else "Copying from"
            term.expect_absent(following, seconds=1.0)
            assert term.alive(), f"copier exited after the invalid answer:\n{term.transcript}"
            assert not (dest / ".copier-answers.yml").exists()

            # Correct it in the same prompt; Ctrl-U clears what was typed.
            term.send(CLEAR_LINE + case.good + ENTER)

        code = term.wait()
        output = term.transcript
    finally:
        term.close()

    assert code == 0, f"copier exited with {code}:\n{output}"
    assert "Traceback" not in output, output
    answers = yaml.safe_load((dest / ".copier-answers.yml").read_text())
    for question, value in case.recorded.items():
        assert answers[question] == value, f"{question}: {answers[question]!r} != {value!r}"
    assert case.bad not in answers.values()


def test_choice_labels_and_messages_fit_80_columns() -> None:
    """At 80 columns prompt_toolkit cuts a choice label that does not fit its line, and the
    terminal wraps a longer message line in the middle of a word."""
    import jinja2
    from jinja2_ansible_filters import AnsibleCoreFiltersExtension  # copier's filters

    # A select question shows "   <label>", a multiselect " » ● <label>"; the last column stays
    # free (a character there makes some terminals wrap).
    too_long = []
    for name, spec in copier_questions().items():
        choices = spec.get("choices")
        if not isinstance(choices, dict):
            continue
        indent = 5 if spec.get("multiselect") else 3
        too_long += [f"{name}: {label}" for label in choices if indent + len(label) >= COLUMNS]
    assert too_long == []

    config = yaml.safe_load((ROOT / "copier.yml").read_text())
    messages = {key: text for key, text in config.items() if key.startswith("_message_")}
    assert messages
    environment = jinja2.Environment(
        extensions=[AnsibleCoreFiltersExtension], undefined=jinja2.StrictUndefined
    )
    # A release, and an unreleased commit (the message then says how to get the tags).
    for database, commit in (("sqlite", "0.3.0"), ("postgresql", "0.2.0.post4.dev0+1b8fb1f")):
        context = {
            "_copier_conf": {"dst_path": "my-service"},
            "_copier_answers": {"_commit": commit},
            "database": database,
            "project_slug": "my-service",
        }
        for key, template in messages.items():
            text = environment.from_string(template).render(context)
            wide = [line for line in text.splitlines() if len(line) >= COLUMNS]
            assert wide == [], f"{key}: {wide}"
            if key == "_message_after_copy":
                assert ("not a release" in text) == (commit != "0.3.0"), text
