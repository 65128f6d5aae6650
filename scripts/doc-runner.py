#!/usr/bin/env python3
"""Runs the shell blocks of the documentation, as written, and fails on drift.

Usage (through scripts/doc-runner.sh, which prepares the Python venv first):

    python3 scripts/doc-runner.py TESSERA_BINARY [DOC.md ...]
    python3 scripts/doc-runner.py --together TESSERA_BINARY [DOC.md ...]
    python3 scripts/doc-runner.py --self-check TESSERA_BINARY

Without DOC arguments it runs README.md, examples/**/README*.md (not under
node_modules) and
docs/*.md. Every fenced block labelled sh, bash, shell or console runs; each
document's blocks run in order in one bash session (`set -eo pipefail`), so a
variable set in one block is seen by the next. A document runs in a fresh
directory holding a copy of the repository's tracked files (staged ones
included), with `tessera` (the binary given) first on PATH, and with
CARGO_TARGET_DIR set (to the repository's target/ unless already set), so
that `cargo run --example` reuses the build. When a runnable block mentions
`127.0.0.1:8080` or `tessera-data`, the runner first starts `tessera serve`
there (listening on 127.0.0.1:8080 with ./tessera-data, as the documents say)
and stops it at the end.

Markers, an HTML comment on the line just before the fence:

    <!-- doc-runner: skip (why) -->           the block does not run; why is required
    <!-- doc-runner: background, ready at HOST:PORT -->
                                              the block is started in the background;
                                              the next block runs once HOST:PORT accepts
                                              connections (at most 180 s); it is stopped
                                              when the document ends

A failing command fails the run: the runner names the document, the block's
line and the failing line, and prints the output. A block the runner would not
run is an error unless it is marked: a fence labelled with another shell
dialect, an unlabelled fence that starts like a command, a marker that no fence
follows, or a skip without a reason. Expected failures are written in the
documents themselves (`|| echo refused`), not known to the runner.

--together runs the README, the Python and MCP examples and the verifier guide
(or the documents given) one after the other in one directory, one session and
against one issuer, as a reader following the README would: their file names,
agents and ports must not collide.

--self-check runs the fixtures in tests/fixtures/docs/: ok.md must pass, and
every other fixture must fail, naming the line it names in its first line
(`<!-- expect failure at line N -->`).
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUN_LANGS = {"sh", "bash", "shell", "console"}
SHELLISH_LANGS = {"zsh", "sh-session", "shell-session", "shellsession", "fish", "ps1", "powershell"}
COMMAND_START = re.compile(r"^(\$ |tessera |cargo |curl |bash |\.venv/|python3? |export |[A-Z_]+=)")
MARKER = re.compile(r"^\s*<!--\s*doc-runner:\s*(.*?)\s*-->\s*$")
FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)")
READY = re.compile(r"^background,\s*ready at\s+([\w.-]+):(\d+)$")
ISSUER_HINT = re.compile(r"127\.0\.0\.1:8080|tessera-data")
DOC_TIMEOUT = 600
# The order the README suggests: its own commands, then the Python and MCP examples.
TOGETHER = ["README.md", "examples/python/README.md", "examples/README-mcp.md", "docs/verifier.md"]
READY_TIMEOUT = 180


class DocError(Exception):
    """A document the runner refuses to run, or a run that failed."""


class Block:
    def __init__(self, doc, line, lang, lines, marker):
        self.doc = doc  # the document's name in messages
        self.line = line  # 1-based line of the opening fence
        self.lang = lang
        self.lines = lines  # (doc line number, text)
        self.marker = marker  # None, ("skip", why) or ("background", host, port)


def parse(file, path):
    """Every fenced block of a Markdown file, with the marker before it (path: its name in messages)."""
    text = file.read_text(encoding="utf-8").splitlines()
    blocks, pending, i = [], None, 0
    while i < len(text):
        line = text[i]
        m = MARKER.match(line)
        if m:
            if pending:
                raise DocError(f"{path}:{pending[0]}: doc-runner marker not followed by a fenced block")
            pending = (i + 1, parse_marker(path, i + 1, m.group(1)))
            i += 1
            continue
        f = FENCE.match(line)
        if not f:
            if pending and line.strip():
                raise DocError(f"{path}:{pending[0]}: doc-runner marker not followed by a fenced block")
            i += 1
            continue
        indent, fence, lang = f.group(1), f.group(2), f.group(3).lower()
        start, body = i + 1, []
        i += 1
        while i < len(text) and not text[i].strip().startswith(fence):
            raw = text[i]
            body.append((i + 1, raw[len(indent):] if raw.startswith(indent) else raw.lstrip()))
            i += 1
        if i >= len(text):
            raise DocError(f"{path}:{start}: fenced block never closed")
        i += 1
        blocks.append(Block(path, start, lang, body, pending[1] if pending else None))
        pending = None
    if pending:
        raise DocError(f"{path}:{pending[0]}: doc-runner marker not followed by a fenced block")
    for b in blocks:
        check_block(path, b)
    return blocks


def parse_marker(path, line, text):
    if text.startswith("skip"):
        why = text[4:].strip()
        if not (why.startswith("(") and why.endswith(")") and len(why) > 2):
            raise DocError(f"{path}:{line}: a skip marker needs its reason: <!-- doc-runner: skip (why) -->")
        return ("skip", why[1:-1])
    m = READY.match(text)
    if m:
        return ("background", m.group(1), int(m.group(2)))
    raise DocError(f"{path}:{line}: unknown doc-runner marker {text!r} "
                   "(skip (why), or background, ready at HOST:PORT)")


def check_block(path, b):
    if b.lang in RUN_LANGS:
        return
    if b.marker:
        raise DocError(f"{path}:{b.line}: doc-runner marker on a block labelled {b.lang or 'nothing'}, "
                       "which never runs")
    if b.lang in SHELLISH_LANGS:
        raise DocError(f"{path}:{b.line}: block labelled {b.lang}: label it sh, bash or console "
                       "so that it runs, or mark it skipped")
    first = next((t for _, t in b.lines if t.strip()), "")
    if not b.lang and COMMAND_START.match(first.strip()):
        raise DocError(f"{path}:{b.line}: unlabelled block that starts like a command: label it sh "
                       "(or text, if it is not one)")


def commands(b):
    """The lines to run: all of them, or for console blocks the `$ ` lines."""
    if b.lang != "console":
        return b.lines
    out, cont = [], False
    for n, t in b.lines:
        if cont or t.startswith("$ "):
            out.append((n, t[2:] if not cont else t))
            cont = t.rstrip().endswith("\\")
    return out


def script_for(blocks, mapping):
    """One bash script for the blocks; mapping[script line] = (document, line)."""
    lines = [
        "set -eo pipefail",
        "__bg_wait() {  # HOST PORT PID LOG",
        f"  local deadline=$((SECONDS + {READY_TIMEOUT}))",
        '  until (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; do',
        '    if ! kill -0 "$3" 2>/dev/null; then',
        '      echo "doc-runner: the background block exited before $1:$2 accepted connections:" >&2',
        '      tail -n 40 "$4" >&2; return 1; fi',
        '    if [ "$SECONDS" -ge "$deadline" ]; then',
        f'      echo "doc-runner: $1:$2 did not accept connections within {READY_TIMEOUT} s:" >&2',
        '      tail -n 40 "$4" >&2; return 1; fi',
        "    sleep 0.5",
        "  done",
        "}",
        "trap 'echo \"__doc_runner_failed $? $LINENO\" >&2' ERR",
    ]
    for b in blocks:
        if b.lang not in RUN_LANGS or (b.marker and b.marker[0] == "skip"):
            continue
        background = b.marker and b.marker[0] == "background"
        if background:
            log = f".doc-runner-bg-{b.line}.log"
            lines.append("(")
        for n, t in commands(b):
            lines.append(t)
            mapping[len(lines)] = (b.doc, n)
        if background:
            host, port = b.marker[1], b.marker[2]
            lines.append(f") > {log} 2>&1 &")
            mapping[len(lines)] = (b.doc, b.line)
            lines.append(f"__bg_wait {host} {port} $! {log}")
            mapping[len(lines)] = (b.doc, b.line)
        lines.append(": end of block")
    return "\n".join(lines) + "\n"


def port_free(host, port):
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) != 0


def wait_port(host, port, proc, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        if not port_free(host, port):
            return True
        time.sleep(0.2)
    return False


def stop(proc):
    if proc and proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def kill_group(pgid):
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        time.sleep(1)


def fresh_copy(dest):
    """A copy of the repository's tracked files (mtimes kept, so cargo finds its build current)."""
    # Tracked files only: whatever an earlier run left in the checkout (an issuer's
    # tessera-data, key files) stays out.
    files = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z", "--cached"],
                           check=True, capture_output=True).stdout
    for name in files.decode().split("\0"):
        src = ROOT / name
        if name and src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    if (ROOT / ".venv").is_dir():
        (dest / ".venv").symlink_to(ROOT / ".venv")


def tail(path, n=60):
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no output)"


def run_doc(docs, tessera, base):
    """Runs one document, or several in one directory and session (--together)."""
    rels = [d.relative_to(ROOT) if d.is_relative_to(ROOT) else d for d in docs]
    rel = " + ".join(map(str, rels))
    blocks = [b for d, r in zip(docs, rels) for b in parse(d, r)]
    run = [b for b in blocks if b.lang in RUN_LANGS and not (b.marker and b.marker[0] == "skip")]
    skipped = [b for b in blocks if b.marker and b.marker[0] == "skip"]
    if not run:
        return f"{rel}: {len(skipped)} skipped, nothing to run"
    slug = re.sub(r"[^\w.-]", "_", str(rels[0])) + ("+together" if len(docs) > 1 else "")
    work = base / slug
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    fresh_copy(work)
    bindir = base / "bin"
    env = dict(os.environ, PATH=f"{bindir}{os.pathsep}{os.environ['PATH']}", CARGO_TERM_COLOR="never",
               NO_COLOR="1")
    env.setdefault("CARGO_TARGET_DIR", str(ROOT / "target"))
    issuer = shell = None
    try:
        if any(ISSUER_HINT.search(t) for b in run for _, t in commands(b)):
            if not port_free("127.0.0.1", 8080):
                raise DocError(f"{rel}: needs an issuer on 127.0.0.1:8080, but that port is in use")
            issuer_log = open(work / ".doc-runner-issuer.log", "w")
            issuer = subprocess.Popen([str(tessera), "serve"], cwd=work, env=env, stdout=issuer_log,
                                      stderr=subprocess.STDOUT, start_new_session=True)
            if not wait_port("127.0.0.1", 8080, issuer, 30):
                raise DocError(f"{rel}: tessera serve did not start:\n{tail(issuer_log.name)}")
        mapping = {}
        script = work / ".doc-runner.sh"
        script.write_text(script_for(blocks, mapping))
        log_path = work / ".doc-runner.log"
        with open(log_path, "w") as log:
            shell = subprocess.Popen(["bash", str(script)], cwd=work, env=env, stdout=log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
            try:
                code = shell.wait(timeout=DOC_TIMEOUT)
            except subprocess.TimeoutExpired:
                code = None
        output = tail(log_path)
        if code != 0:
            where = f"did not finish within {DOC_TIMEOUT} s" if code is None else f"exit {code}"
            m = re.findall(r"__doc_runner_failed (\d+) (\d+)", output)
            if m:
                doc, line = mapping.get(int(m[-1][1]), (None, None))
                block = max((b.line for b in run if b.doc == doc and b.line <= (line or 0)), default=None)
                where = f"{doc}: block at line {block}, failing line {line}, exit {m[-1][0]}"
            extra = ""
            for bg in sorted(work.glob(".doc-runner-bg-*.log")):
                extra += f"\n--- background block output ({bg.name}):\n{tail(bg, 30)}"
            if issuer:
                extra += f"\n--- issuer output:\n{tail(work / '.doc-runner-issuer.log', 20)}"
            output = re.sub(r"(?m)^__doc_runner_failed .*\n?", "", output)
            raise DocError(f"{rel}: FAILED ({where})\n--- output:\n{output}{extra}")
    finally:
        if shell:
            kill_group(shell.pid)  # the document's background blocks, and anything left over
        stop(issuer)
    return f"{rel}: ok ({len(run)} blocks run, {len(skipped)} skipped)"


def documents():
    docs = [ROOT / "README.md"]
    # Installed packages (examples/js/node_modules) bring their own READMEs:
    # not ours to run.
    docs += sorted(
        p
        for p in (ROOT / "examples").rglob("README*.md")
        if "node_modules" not in p.relative_to(ROOT).parts
    )
    docs += sorted((ROOT / "docs").glob("*.md"))
    return docs


def run_all(groups, tessera, base):
    failed = 0
    for doc in groups:
        started = time.monotonic()
        try:
            print(f"doc-runner: {run_doc(doc, tessera, base)} [{time.monotonic() - started:.0f} s]", flush=True)
        except DocError as e:
            failed += 1
            print(f"doc-runner: {e}", file=sys.stderr, flush=True)
    return failed


def self_check(tessera, base):
    fixtures = sorted((ROOT / "tests" / "fixtures" / "docs").glob("*.md"))
    bad = 0
    for doc in fixtures:
        first = doc.read_text().splitlines()[0]
        m = re.search(r"expect failure at line (\d+)", first)
        try:
            result = run_doc([doc], tessera, base)
            ok, message = m is None, result
        except DocError as e:
            message = str(e)
            ok = m is not None and (f":{m.group(1)}:" in message or f"line {m.group(1)}" in message)
        print(f"doc-runner self-check: {doc.name}: {'as expected' if ok else 'WRONG'}: "
              f"{message.splitlines()[0]}", flush=True)
        bad += not ok
    if not fixtures:
        print("doc-runner self-check: no fixtures found", file=sys.stderr)
        return 1
    return bad


def main(argv):
    check = argv[:1] == ["--self-check"]
    together = argv[:1] == ["--together"]
    args = argv[1:] if check or together else argv
    if not args or args[0].startswith("-"):
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    tessera = Path(args[0]).resolve()
    if not os.access(tessera, os.X_OK):
        print(f"doc-runner: {args[0]} is not an executable tessera binary", file=sys.stderr)
        return 2
    # One directory per document under a fixed base, emptied before each run: the
    # path stays the same from run to run, so `cargo run --example` in a document
    # reuses its earlier build instead of compiling the crate again.
    target = Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target")
    base = Path(os.environ.get("DOC_RUNNER_DIR") or target / "doc-runner").resolve()
    (base / "bin").mkdir(parents=True, exist_ok=True)
    link = base / "bin" / "tessera"
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(tessera)
    if check:
        return 1 if self_check(tessera, base) else 0
    docs = [Path(d).resolve() for d in args[1:]]
    if together:
        groups = [docs or [ROOT / p for p in TOGETHER]]
    else:
        groups = [[d] for d in docs or documents()]
    failed = run_all(groups, tessera, base)
    if failed:
        print(f"doc-runner: {failed} of {len(groups)} runs failed", file=sys.stderr)
        return 1
    print(f"doc-runner: all {len(groups)} runs went as written")
    return 0


def interrupted(signum, _frame):
    raise SystemExit(128 + signum)  # unwinds through run_doc's cleanup


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, interrupted)
    sys.exit(main(sys.argv[1:]))
