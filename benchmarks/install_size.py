"""What `pip install pipeclient` brings, next to `pip install openai`: packages and MB.

Each is installed into its own fresh virtualenv (pipeclient from this checkout, not
editable, so its own files count too); the count is the distributions pip installed
(pip and setuptools excluded, the package itself included), the size is every file they
own, as their RECORD lists them.

    python3 benchmarks/install_size.py            # base install vs openai
    python3 benchmarks/install_size.py --extras   # also each extra, and [all]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_REPORT = """
import importlib.metadata as md, json, os
dists = {}
for dist in md.distributions():
    name = dist.metadata["Name"].lower()
    if name in ("pip", "setuptools", "wheel"):
        continue
    size = 0
    for file in dist.files or ():
        path = dist.locate_file(file)
        if os.path.isfile(path):
            size += os.path.getsize(path)
    dists[name] = size
print(json.dumps(dists))
"""


def measure(label: str, requirement: str, workdir: Path) -> dict[str, object]:
    env_dir = workdir / label.replace("[", "_").replace("]", "")
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-cache-dir", requirement],
        check=True,
        cwd=ROOT,
    )
    out = subprocess.run(  # not in the checkout: its egg-info would count as installed
        [str(python), "-c", _REPORT], capture_output=True, text=True, check=True, cwd=workdir
    )
    dists: dict[str, int] = json.loads(out.stdout)
    return {
        "install": label,
        "packages": len(dists),
        "mb": round(sum(dists.values()) / 1e6, 1),
        "names": sorted(dists),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--extras", action="store_true", help="also measure each extra")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    args = parser.parse_args()
    targets = [("pip install pipeclient", str(ROOT)), ("pip install openai", "openai")]
    if args.extras:
        for extra in ("crypto", "posthog", "langfuse", "otlp", "all"):
            targets.append((f"pip install 'pipeclient[{extra}]'", f"{ROOT}[{extra}]"))
    with tempfile.TemporaryDirectory(prefix="install-size-") as tmp:
        rows = [measure(label, req, Path(tmp)) for label, req in targets]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    base, openai = rows[0], rows[1]
    for row in rows:
        print(f"{row['install']:<36} {row['packages']:>3} packages {row['mb']:>6} MB")
    print(
        f"\nbase install / openai: {base['packages']}/{openai['packages']} packages, "
        f"{float(base['mb']) / float(openai['mb']):.2f}x the MB"  # type: ignore[arg-type]
    )
    print("pipeclient:", ", ".join(base["names"]))  # type: ignore[arg-type]
    print("openai:    ", ", ".join(openai["names"]))  # type: ignore[arg-type]
    return 0


if __name__ == "__main__":
    sys.exit(main())
