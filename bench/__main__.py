"""`python -m bench` (`make bench`, `make bench SCENARIO=upload`): run, print, save.

Exit status 1 when a scenario or a case failed (an error, not a missed target): a benchmark
that cannot measure must not look like one that measured.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import sys
import time
import traceback
from pathlib import Path

from bench import scenarios
from bench.context import Context, Options
from bench.harness import ScenarioResult, markdown

RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mib": 1 << 20,
          "g": 1 << 30, "gib": 1 << 30}


def parse_size(text: str) -> int:
    match = re.fullmatch(r"\s*(\d+)\s*([a-zA-Z]*)\s*", text)
    unit = match.group(2).lower() if match else None
    if not match or unit not in _UNITS:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size like 1G, 64M or 4096")
    return int(match.group(1)) * _UNITS[unit]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--scenario", action="append", default=[],
                        help=f"run only this scenario (repeatable, or comma-separated): "
                             f"{', '.join(scenarios.KNOWN)}")
    parser.add_argument("--size", type=parse_size, default=1 << 30,
                        help="image size (default 1G)")
    parser.add_argument("--runs", type=int, default=5, help="runs of each case (default 5)")
    parser.add_argument("--no-peer", action="store_true",
                        help="skip the Glance 33 peer (its cases show as skipped)")
    parser.add_argument("--api-seconds", type=float, default=10.0,
                        help="duration of each API load run (default 10)")
    parser.add_argument("--api-images", type=int, default=1000,
                        help="images in each API's database for the API scenario")
    parser.add_argument("--no-install", action="store_true",
                        help="never apt-get install nginx/wrk (missing: skipped or fallback)")
    parser.add_argument("--results", type=Path, default=RESULTS,
                        help=f"JSON results file (default {RESULTS})")
    parser.add_argument("--work", type=Path, default=Options.work,
                        help="work directory for data files and servers")
    args = parser.parse_args(argv)
    names = [n.strip() for item in args.scenario for n in item.split(",") if n.strip()]
    unknown = [n for n in names if n not in scenarios.KNOWN]
    if unknown:
        parser.error(f"unknown scenario {unknown[0]!r}; choose from {', '.join(scenarios.KNOWN)}")
    args.names = names or list(scenarios.ORDER)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    return args


def run_one(ctx: Context, name: str) -> ScenarioResult:
    module = scenarios.load(name)
    started = time.monotonic()
    print(f"bench: {name} ...", file=sys.stderr, flush=True)
    try:
        result = module.run(ctx)
    except Exception as exc:  # noqa: BLE001 - one broken scenario must not hide the others
        traceback.print_exc()
        result = ScenarioResult(name, module.TITLE, ctx.opts.size, ctx.opts.runs,
                                error=f"{type(exc).__name__}: {exc}")
    result.seconds = time.monotonic() - started
    result.finished = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    print(f"bench: {name} done in {result.seconds:.0f} s", file=sys.stderr, flush=True)
    return result


def save(path: Path, results: list[ScenarioResult], args: argparse.Namespace) -> None:
    """Merge into `path`: a run of some scenarios replaces those and keeps the others."""
    doc: dict = {}
    if path.exists():
        try:
            doc = json.loads(path.read_text())
        except ValueError:
            doc = {}
    doc.setdefault("scenarios", {})
    doc["host"] = {"python": platform.python_version(), "machine": platform.machine(),
                   "kernel": platform.release(), "cpus": os.cpu_count()}
    for res in results:
        entry = res.to_json()
        entry["options"] = {"size": args.size, "runs": args.runs, "peer": not args.no_peer,
                            "api_seconds": args.api_seconds, "api_images": args.api_images}
        doc["scenarios"][res.name] = entry
    doc["scenarios"] = {name: doc["scenarios"][name] for name in scenarios.KNOWN
                        if name in doc["scenarios"]}
    doc["markdown"] = markdown(results)  # the table of the latest invocation
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1) + "\n")


def compile_chute() -> None:
    """Write chute's bytecode before any CLI is timed, as `pip install` does for an installed
    package. The editable install of `make install` has none, and under
    PYTHONDONTWRITEBYTECODE (set in some shells) every `chute` run compiled its ~26 modules
    again: 0.023 CPU-s per run, which no user of an installed chute pays."""
    import compileall

    import chute

    # Both levels: chute-api runs itself under -OO (chute.images.main); its libraries' -OO
    # bytecode is written by `make install`.
    for root in chute.__path__:
        compileall.compile_dir(root, quiet=1, optimize=[0, 2])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    compile_chute()
    opts = Options(size=args.size, runs=args.runs, peer=not args.no_peer,
                   api_seconds=args.api_seconds, api_images=args.api_images,
                   install=not args.no_install, work=args.work)
    ctx = Context(opts)
    results: list[ScenarioResult] = []
    try:
        for name in args.names:
            results.append(run_one(ctx, name))
            save(args.results, results, args)
    finally:
        ctx.close()
    table = markdown(results)
    print(table)
    print(f"\nresults: {args.results}")
    errors = [err for res in results for err in res.errors()]
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
