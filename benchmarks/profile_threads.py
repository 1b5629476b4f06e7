"""Where a client's CPU goes, per thread, in microseconds per call (py-spy, GIL holder only).

    .venv/bin/python benchmarks/profile_threads.py [VARIANT] [--calls N] [--hang] [--top K]

Runs one worker (default `pipeclient+all`) against the benchmark's loopback servers under
`py-spy record --gil --threads` (py-spy is in the venv), then prints, per thread, its
share of the samples and the functions it spends them in (inclusive), as microseconds per
call. With `--gil` a sample goes to the thread holding the GIL, so the figures add up to
the process's Python CPU time; time in C outside the GIL (socket waits, zlib) is not in it.
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from run import HERE, PYTHON, Server, clean_env

_THREAD = re.compile(r"thread \(\w+\)(?:: (?P<name>.+))?")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variant", nargs="?", default="pipeclient+all")
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--rate", type=int, default=250, help="samples per second")
    parser.add_argument("--hang", action="store_true", help="destinations never answer")
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument("--match", default="", help="only functions whose frame contains this")
    args = parser.parse_args()
    py_spy = shutil.which("py-spy") or str(Path(PYTHON).with_name("py-spy"))
    tmp = Path(tempfile.mkdtemp(prefix="pipeclient-profile-"))
    (tmp / "home").mkdir()
    env = clean_env(tmp / "home")
    llm, capture = Server("llm", env, tmp), Server("capture", env, tmp)
    try:
        port = capture.ports[1] if args.hang else capture.ports[0]
        commands = "".join(
            json.dumps(c) + "\n"
            for c in (
                {"op": "soak", "n": args.calls, "every": args.calls},
                *([] if args.hang else [{"op": "settle"}]),
                {"op": "exit"},
            )
        )
        raw = tmp / "profile.txt"
        worker = [
            PYTHON,
            str(HERE / "_worker.py"),
            args.variant,
            "--llm",
            f"http://127.0.0.1:{llm.ports[0]}",
            "--capture",
            f"http://127.0.0.1:{port}/w/profile",
            "--tmp",
            str(tmp / "w"),
            *(["--hang"] if args.hang else []),
        ]
        subprocess.run(
            [
                py_spy,
                "record",
                "--gil",
                "--threads",
                "-f",
                "raw",
                "-r",
                str(args.rate),
                "-o",
                str(raw),
                "--",
                *worker,
            ],
            input=commands,
            text=True,
            env=env,
            cwd=tmp,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=900,
        )
        report(raw, args)
    finally:
        llm.stop()
        capture.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def report(raw: Path, args: argparse.Namespace) -> None:
    per_sample_us = 1e6 / args.rate / args.calls  # one sample, spread over the calls
    threads: collections.Counter[str] = collections.Counter()
    inclusive: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        match = _THREAD.match(frames[0])
        thread = (match.group("name") if match else None) or "(unnamed)"
        thread = re.sub(r"-\d+$", "", thread)
        n = int(count)
        threads[thread] += n
        seen = set()
        for frame in frames[1:]:
            name = re.sub(r":\d+\)$", ")", frame)  # by function, not by line
            if name not in seen:
                seen.add(name)
                inclusive[thread][name] += n
    total = sum(threads.values())
    print(
        f"{args.variant}{' (hanging destinations)' if args.hang else ''}: {args.calls:,} calls "
        f"(after a 50-call warm-up, which is in the profile), {total:,} samples at "
        f"{args.rate}/s = {total * per_sample_us:,.0f} us of GIL time per call\n"
    )
    for thread, n in threads.most_common():
        print(f"## {thread}: {n * per_sample_us:,.0f} us/call ({100 * n / total:.0f}%)")
        shown = 0
        for frame, m in inclusive[thread].most_common():
            if args.match and args.match not in frame:
                continue
            if frame.startswith(("Thread.", "<module>", "main (")):
                continue
            print(f"   {m * per_sample_us:8,.0f} us  {frame}")
            shown += 1
            if shown >= args.top:
                break
        print()


if __name__ == "__main__":
    sys.exit(main())
